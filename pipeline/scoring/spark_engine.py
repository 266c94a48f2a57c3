"""Batch scoring on Apache Spark: the same serving signature and output columns as the local
engine (``pipeline.scoring.local_engine``), for inputs that live in a data lake or outgrow one machine.

The input (a file, a directory of part files, a glob, or any URI the cluster's Spark can
read) is read by Spark; rows without an ``id`` get their 1-based position in the input
(files in path order, rows in file order), as the local engine numbers them. Each Python
worker loads the model version once, with one TensorFlow thread, and scores its partitions
with ``serving_default`` through ``mapInPandas``. The model folder is copied once and
shipped to the executors with ``SparkContext.addArchive``, so a promotion or rollback during
the run cannot mix versions inside one output.

This module imports pyspark only inside functions: the base install does not need it.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from pipeline.scoring.batch_files import INPUT_FORMATS, BatchInputError, check_line_ends

# Spark's reader for each suffix the local engine reads (a file without one is text).
SPARK_FORMATS = {suffix: "json" if kind == "jsonl" else kind
                 for suffix, kind in INPUT_FORMATS.items()}
OUTPUT_SCHEMA = ("id string, text string, spam_probability float, label string, "
                 "model_version long")
GLOB_CHARACTERS = "*?[{"


def is_remote(location: str) -> bool:
    """A URI for the cluster's file systems (hdfs://, s3a://, gs://...), not a local path."""
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    return len(scheme) > 1 and scheme != "file"


def local_files(location: str) -> list[str]:
    """The files a local path, directory or glob names, in path order (hidden files and
    Spark's ``_SUCCESS`` markers left out)."""
    path = location[len("file://"):] if location.startswith("file://") else location
    if any(c in path for c in GLOB_CHARACTERS):
        candidates = glob.glob(path, recursive=True)
    elif os.path.isdir(path):
        candidates = [str(p) for p in Path(path).rglob("*")]
    else:
        candidates = [path] if os.path.isfile(path) else []
    return sorted(p for p in candidates if os.path.isfile(p)
                  and not Path(p).name.startswith((".", "_")))


def input_stem(location: str) -> str:
    """A name for the scores of ``location``: its last path part that is not a glob."""
    path = urllib.parse.urlsplit(location).path if is_remote(location) else location
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts
             if not any(c in p for c in GLOB_CHARACTERS)]
    stem = PurePosixPath(parts[-1]).stem if parts else "input"
    return re.sub(r"[^\w.-]", "_", stem) or "input"


def input_format(location: str, files: list[str]) -> str:
    """Spark's reader for the input, from the suffix of its files (or of the URI)."""
    suffixes = {Path(f).suffix.lower() for f in files} or {
        PurePosixPath(urllib.parse.urlsplit(location).path).suffix.lower()}
    kinds = {SPARK_FORMATS.get(s) for s in suffixes}
    if len(kinds) != 1 or None in kinds:
        raise BatchInputError(
            f"batch input {location}: cannot tell one format from the file suffixes "
            f"{sorted(suffixes)}; use files of one kind ({', '.join(sorted(SPARK_FORMATS))})"
            ", e.g. a glob like incoming/date=YYYY-MM-DD/*.parquet")
    return kinds.pop()


def spark_session(master: str, conf: dict[str, str], app_name: str):
    """A SparkSession whose Python workers run this interpreter (the venv's), not the
    system ``python3``. ``conf`` holds any Spark setting ([spark] conf in luigi.cfg)."""
    from pyspark.sql import SparkSession

    if "spark.driver.host" in conf:  # the JVM must not pick another interface first
        os.environ.setdefault("SPARK_LOCAL_IP", conf["spark.driver.host"])
    # Local workers follow the environment, not spark.pyspark.python, when the session
    # starts its own JVM: without this they run the system python3, which lacks TF.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {"spark.pyspark.python": sys.executable,
                "spark.pyspark.driver.python": sys.executable,
                "spark.ui.showConsoleProgress": "false", **conf}
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()


def read_input(spark, location: str, files: list[str], kind: str):
    """A DataFrame of the input's ``id`` (string) and ``text``; an input without ids gets
    their 1-based position in the input (files in path order, rows in file order), as the
    local engine numbers them.

    Only ``\n`` and ``\r\n`` end a line, as in the local engine: Spark's text and JSON
    readers would also end one at a lone ``\r``, so they are told ``lineSep="\n"`` and a
    text line loses one trailing ``\r``. See :func:`_read_delimited` for CSV/TSV.
    """
    from pyspark.sql import functions as F

    paths = files or [location]
    if kind in ("csv", "tsv", "text"):
        for path in files:  # local files: a file of \r-ended lines would be one row
            check_line_ends(path)
    reader = spark.read
    if kind in ("csv", "tsv"):
        frame = _read_delimited(spark, location, files, kind)
    elif kind == "json":
        _check_json_lines(spark, paths, location)
        frame = reader.options(mode="FAILFAST", lineSep="\n").json(paths)
    elif kind == "text":
        value = F.col("value")
        frame = reader.options(lineSep="\n").text(paths).select(
            F.when(value.endswith("\r"), F.expr("substring(value, 1, length(value) - 1)"))
            .otherwise(value).alias("text"))
    else:
        frame = reader.parquet(*paths)
    if "text" not in frame.columns:
        raise BatchInputError(f"batch input {location} has no 'text' column (columns: "
                              f"{frame.columns}); name the message column 'text'")
    text = F.col("text").cast("string")
    if kind in ("csv", "tsv"):  # Spark reads an empty field as null; pandas as ""
        text = F.coalesce(text, F.lit(""))
    if "id" in frame.columns:
        return frame.select(F.col("id").cast("string").alias("id"), text.alias("text"))
    ordered = frame.select(text.alias("text"), F.input_file_name().alias("file"),
                           F.monotonically_increasing_id().alias("row")).sort("file", "row")
    numbered = ordered.rdd.zipWithIndex().map(lambda pair: (str(pair[1] + 1), pair[0][0]))
    return numbered.toDF("id string, text string")


def _read_delimited(spark, location: str, files: list[str], kind: str):
    """CSV/TSV with Spark's parser, told each file's line end (``lineSep``): left to
    itself it takes the first line's end for the whole file, ends lines at a lone ``\r``
    in a file whose first line does, and turns ``\r\n`` inside quoted fields into ``\n``.
    A remote input cannot be looked at here and is left to Spark's detection."""
    from functools import reduce

    delimiter = "," if kind == "csv" else "\t"
    options = {"header": True, "sep": delimiter, "multiLine": True, "escape": '"',
               "mode": "FAILFAST"}
    if not files:
        return spark.read.options(**options).csv([location])
    groups: dict[str, list[str]] = {}
    for path in files:
        groups.setdefault(_line_separator(path, delimiter), []).append(path)
    frames = [spark.read.options(lineSep=separator, **options).csv(paths)
              for separator, paths in groups.items()]
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _line_separator(path: str, delimiter: str) -> str:
    """``\r\n`` or ``\n``: how the lines of a local CSV/TSV file end (its first line
    tells). Spark takes one line end per file, so a file that mixes both outside quoted
    fields is refused (the local engine reads it)."""
    import mmap

    from pipeline.scoring.batch_files import line_ends_outside_quotes

    if os.path.getsize(path) == 0:
        return "\n"
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as data:
        first = data.find(b"\n")
        crlf = first > 0 and data[first - 1] == ord("\r")
        other = rb"(?<!\r)\n" if crlf else rb"\r\n"
        if re.search(other, data):  # maybe only inside quoted fields
            unwanted = b"\n" if crlf else b"\r\n"
            for end, offset in line_ends_outside_quotes(data, delimiter):
                if end == unwanted:
                    line = data[:offset].count(b"\n") + 1
                    raise BatchInputError(
                        f"batch input {path}, line {line} ends with {end.decode()!r} but the "
                        f"first line with {'CRLF' if crlf else 'LF'}: Spark reads one kind of "
                        "line end per file; convert the file (dos2unix or unix2dos) or score "
                        "it with --engine local")
    return "\r\n" if crlf else "\n"


def _check_json_lines(spark, paths: list[str], location: str) -> None:
    """Refuse JSON Lines that the local engine refuses: Spark's JSON reader skips empty
    lines and ignores what follows the first object on a line (``{...}\\r{...}``), which
    would drop rows without a word."""
    from pyspark.sql import functions as F

    lines = spark.read.options(lineSep="\n").text(paths).select(
        F.input_file_name().alias("file"), "value")
    bad = lines.mapInPandas(_json_problems, "file string, problem string").limit(1).collect()
    if bad:
        raise BatchInputError(f"batch input {location}: a line of {bad[0]['file']} "
                              f"{bad[0]['problem']}")


def _json_problems(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from pipeline.scoring.batch_files import parse_json_line

    for chunk in chunks:
        for file, line in zip(chunk["file"], chunk["value"]):
            _, problem = parse_json_line(line)
            if problem:
                yield pd.DataFrame({"file": [file], "problem": [problem]})
                return


def spread(frame, spark):
    """Give every core work: a small input, or a Parquet file of one row group (which
    Spark never splits), arrives as fewer partitions than the cluster has cores."""
    cores = spark.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() < cores:
        return frame.repartition(cores)
    return frame


_LOADED: dict[str, object] = {}


def _signature(model_name: str):
    """The shipped model's signature, loaded once per Python worker with one TF thread."""
    if model_name not in _LOADED:
        from pyspark import SparkFiles

        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from pipeline.serving.exported_model import ServingSignature

        _LOADED[model_name] = ServingSignature(SparkFiles.get(model_name))
    return _LOADED[model_name]


def scorer(model_name: str, version: int, batch_size: int
           ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: score each chunk of a partition with the signature."""
    def score_partition(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pipeline.serving.batching import score_texts

        signature = _signature(model_name)
        for chunk in chunks:
            if chunk["text"].isna().any():
                row = chunk.loc[chunk["text"].isna(), "id"].iloc[0]
                raise BatchInputError(f"a message has no text (id {row})")
            probabilities, labels = score_texts(chunk["text"].tolist(), signature, batch_size)
            yield pd.DataFrame({"id": chunk["id"], "text": chunk["text"],
                                "spam_probability": probabilities.astype(np.float32),
                                "label": labels, "model_version": np.int64(version)})
    return score_partition


def ship_model(spark, version_folder: Path, staging: Path) -> str:
    """Pack the version folder into a zip in ``staging`` (a rollback or pruning during
    the run cannot touch it) and ship it to every executor, which unpacks it once;
    returns the name executors find the folder under (``SparkFiles.get``). A zip, as
    Spark ships local directories only to local masters."""
    name = f"spam-model-v{version_folder.name}-{os.getpid()}-{id(staging):x}"
    archive = shutil.make_archive(str(staging / name), "zip", root_dir=version_folder)
    spark.sparkContext.addArchive(archive)
    return Path(archive).name


class StageProgress:
    """Reports Spark's task progress (done / total of the active stages) every second."""

    def __init__(self, spark, report: Callable[[int, int], None]):
        self._tracker = spark.sparkContext.statusTracker()
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="spark-progress")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            stages = [self._tracker.getStageInfo(s) for s in self._tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            if stages:
                self._report(sum(s.numCompletedTasks for s in stages),
                             sum(s.numTasks for s in stages))


def score_with_spark(spark, location: str, version_folder: Path, version: int,
                     destination: Path, batch_size: int,
                     on_progress: Callable[[int, int], None] | None = None) -> int:
    """Score ``location`` into a Parquet dataset at ``destination``, a folder the caller
    publishes when this returns. Returns the number of rows written."""
    files = [] if is_remote(location) else local_files(location)
    if not files and not is_remote(location):
        raise BatchInputError(f"batch input {location} names no file (a missing path, an "
                              "empty folder or a glob that matches nothing)")
    kind = input_format(location, files)
    with tempfile.TemporaryDirectory(prefix="spam-model-") as staging:
        try:
            model = ship_model(spark, version_folder, Path(staging))
            frame = spread(read_input(spark, location, files, kind), spark)
            scored = frame.mapInPandas(scorer(model, version, batch_size), OUTPUT_SCHEMA)
            with StageProgress(spark, on_progress or (lambda done, total: None)):
                scored.write.mode("overwrite").parquet(str(destination))
        except Exception as error:
            if not type(error).__module__.startswith(("pyspark", "py4j")):
                raise
            raise BatchInputError(f"Spark could not score batch input {location}: "
                                  f"{_first_line(error)}") from None
    return spark.read.parquet(str(destination)).count()


def _first_line(error: Exception) -> str:
    """The line of a Spark error that says what happened (they run to pages)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line or "Exception" in line] or lines
    return (useful[0] if useful else type(error).__name__)[:500]
