"""The files of batch scoring, in one place: the formats ``BatchScore`` reads (CSV, TSV,
JSON Lines, Parquet, plain text: :data:`INPUT_FORMATS`) and writes (CSV, Parquet:
:data:`SINKS`, whose names are ``--BatchScore-output-format``'s choices), and reading
back what it wrote. Every reader yields ``id``/``text`` chunks in file order; a file that
cannot be read as a whole is refused with a clear error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

OUTPUT_COLUMNS = ["id", "text", "spam_probability", "label", "model_version"]
TEXT_SUFFIXES = ("", ".txt", ".text")
INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet", **{s: "text" for s in TEXT_SUFFIXES}}


class BatchInputError(ValueError):
    """The batch input file cannot be scored as it is."""


def input_format(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise BatchInputError(
            f"batch input {path}: unknown format {suffix!r}; use one of "
            f"{sorted(s for s in INPUT_FORMATS if s)} or a plain text file (.txt)")
    return INPUT_FORMATS[suffix]


def read_messages(path: Path | str, chunk_rows: int,
                  on_fraction: Callable[[float], None] | None = None) -> Iterator[pd.DataFrame]:
    """Yield ``id``/``text`` chunks of a batch input file, in file order.

    CSV/TSV/Parquet/JSON Lines need a ``text`` field and may carry an ``id``; rows without
    an id are numbered from 1. Plain text has one message per line (ids: line numbers).
    ``on_fraction`` gets the share of the file read so far after each chunk.
    """
    path = Path(path)
    kind = input_format(path)
    if not path.is_file():
        raise BatchInputError(f"batch input {path} does not exist")
    size = max(path.stat().st_size, 1)
    readers = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_json_lines,
               "parquet": _read_parquet, "text": _read_lines}
    first_id = 1
    try:
        for chunk, position in readers[kind](path, chunk_rows, kind):
            if "id" not in chunk:
                chunk.insert(0, "id", np.arange(first_id, first_id + len(chunk)).astype(str))
            first_id += len(chunk)
            yield chunk[["id", "text"]].reset_index(drop=True)
            if on_fraction:
                on_fraction(min(position / size, 1.0))
    except UnicodeDecodeError as error:
        raise BatchInputError(
            f"batch input {path} is not valid UTF-8 (byte {error.start} of a block: "
            f"{error.object[error.start:error.start + 8]!r}); re-encode it as UTF-8") from None


def _read_delimited(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        if b"\x00" in handle.read(1 << 20):
            raise BatchInputError(f"batch input {path} contains NUL bytes: is it really a "
                                  f"{kind.upper()} text file?")
        handle.seek(0)
        try:
            reader = pd.read_csv(handle, sep="," if kind == "csv" else "\t", dtype=str,
                                 keep_default_na=False, na_filter=False, chunksize=chunk_rows,
                                 encoding="utf-8", engine="c")
        except pd.errors.EmptyDataError:
            raise BatchInputError(f"batch input {path} is empty: expected a header line "
                                  "with a 'text' column") from None
        with reader:
            try:
                chunks = iter(reader)
                first = next(chunks, None)
                # a header-only file gives no chunk: check its header line instead
                header = list(first.columns) if first is not None else _header(path, kind)
                _check_columns(path, header)
                if first is not None:
                    yield first, handle.tell()
                for chunk in chunks:
                    yield chunk, handle.tell()
            except pd.errors.ParserError as error:
                raise BatchInputError(f"batch input {path} is not valid {kind.upper()}: "
                                      f"{error}") from None


def _header(path: Path, kind: str) -> list[str]:
    return list(pd.read_csv(path, sep="," if kind == "csv" else "\t", nrows=0,
                            encoding="utf-8").columns)


def _check_columns(path: Path, columns: list[str]) -> None:
    if "text" not in columns:
        raise BatchInputError(f"batch input {path} has no 'text' column (columns: {columns}); "
                              "name the message column 'text'")


def _read_json_lines(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        ids, texts = [], []
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                raise BatchInputError(f"batch input {path} line {number} is empty; every "
                                      'line must be a JSON object like {"text": "..."}')
            try:
                record = json.loads(line)
            except ValueError as error:
                raise BatchInputError(f"batch input {path} line {number} is not JSON: "
                                      f"{error}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise BatchInputError(f"batch input {path} line {number} has no string "
                                      f"'text' field: {line[:80]!r}")
            # no id: the row number, as read_messages numbers rows of the other formats
            ids.append(str(record["id"]) if "id" in record else str(number))
            texts.append(record["text"])
            if len(texts) == chunk_rows:
                yield pd.DataFrame({"id": ids, "text": texts}), handle.tell()
                ids, texts = [], []
        if texts:
            yield pd.DataFrame({"id": ids, "text": texts}), handle.tell()


def _read_parquet(path: Path, chunk_rows: int, kind: str):
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types
        raise BatchInputError(f"batch input {path} is not a Parquet file: {error}") from None
    names = source.schema_arrow.names
    _check_columns(path, names)
    columns = ["id", "text"] if "id" in names else ["text"]
    done = 0
    for batch in source.iter_batches(batch_size=chunk_rows, columns=columns):
        frame = batch.to_pandas()
        if frame["text"].isna().any():
            raise BatchInputError(f"batch input {path} has null texts (row "
                                  f"{done + int(frame['text'].isna().to_numpy().argmax()) + 1})")
        if "id" in frame:
            frame["id"] = frame["id"].astype(str)
        done += len(frame)
        yield frame, int(path.stat().st_size * done / max(source.metadata.num_rows, 1))


def _read_lines(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        texts: list[str] = []
        for line in handle:
            texts.append(line.rstrip(b"\n").rstrip(b"\r").decode("utf-8"))
            if len(texts) == chunk_rows:
                yield pd.DataFrame({"text": texts}), handle.tell()
                texts = []
        if texts:
            yield pd.DataFrame({"text": texts}), handle.tell()


def _output_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("text", pa.string()),
                      ("spam_probability", pa.float32()), ("label", pa.string()),
                      ("model_version", pa.int64())])


def scored_table(chunk: pd.DataFrame, probabilities: np.ndarray, labels: np.ndarray,
                 model_version: int):
    """The output rows of a scored ``id``/``text`` chunk, as an Arrow table for the sinks
    (the chunk's Arrow-backed strings are reused, not converted to Python objects)."""
    import pyarrow as pa

    schema = _output_schema()
    return pa.Table.from_arrays(
        [pa.array(chunk["id"].astype(str), pa.string()), pa.array(chunk["text"], pa.string()),
         pa.array(probabilities, pa.float32()), pa.array(labels, pa.string()),
         pa.array(np.full(len(chunk), model_version), pa.int64())], schema=schema)


def read_scores(path: Path | str, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield chunks of a scores file that BatchScore wrote (CSV or Parquet), with
    :data:`OUTPUT_COLUMNS`, in file order."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():  # the Spark engine's Parquet dataset: its part files, in order
        batches = (batch for part in sorted(path.glob("part-*.parquet"))
                   for batch in pq.ParquetFile(part).iter_batches(batch_size=chunk_rows))
    elif path.suffix == ".parquet":
        batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    else:
        types = {field.name: field.type for field in _output_schema()}
        batches = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 24),
                                  convert_options=pa_csv.ConvertOptions(
                                      column_types=types, strings_can_be_null=False))
    for batch in batches:
        yield batch.to_pandas()


def read_day_scores(path: Path | str, chunk_rows: int = 50_000
                    ) -> tuple[int, Iterator[pd.DataFrame]]:
    """The model version of a scores file (BatchScore scores a file with one version)
    and its chunks; a file with no rows is an error, for there is nothing to look at."""
    import itertools

    chunks = read_scores(path, chunk_rows)
    first = next((chunk for chunk in chunks if len(chunk)), None)
    if first is None:
        raise BatchInputError(
            f"scores file {path} has no rows: the day's input was empty, so there is "
            "nothing to monitor or review")
    return int(first["model_version"].iloc[0]), itertools.chain([first], chunks)


class CsvSink:
    """Writes scored chunks as one CSV file (header first, even for 0 rows) with Arrow's
    writer: text fields quoted, probabilities in their shortest exact float32 form."""

    def __init__(self, destination):
        import pyarrow.csv as pa_csv

        self.schema = _output_schema()
        target = str(destination) if isinstance(destination, (str, Path)) else destination
        self.writer = pa_csv.CSVWriter(target, self.schema,
                                       write_options=pa_csv.WriteOptions(quoting_style="needed"))

    def write(self, table) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class ParquetSink:
    """Writes scored chunks as row groups of one Parquet file."""

    def __init__(self, path: Path | str):
        import pyarrow.parquet as pq

        self.schema = _output_schema()
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, table) -> None:
        self.writer.write_table(table, row_group_size=max(len(table), 1))  # a chunk a group

    def close(self) -> None:
        self.writer.close()


SINKS = {"csv": CsvSink, "parquet": ParquetSink}  # --BatchScore-output-format: a name here


def open_sink(output_format: str, destination):
    """The sink that writes ``output_format`` (a name in :data:`SINKS`) to ``destination``."""
    return SINKS[output_format](destination)
