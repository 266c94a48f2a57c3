"""BatchScore --engine spark on real Spark (loopback only): the same scores as the local
engine for every input format, on local[2] and on a standalone cluster of two workers;
clear errors and nothing published for bad input or a killed run."""
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SHARED_CORPUS, luigi_config, write_cfg
from pipeline.scoring import batch_files
from pipeline import tasks
from test_operations import run_luigi

pyspark = pytest.importorskip("pyspark", reason="pip install -r requirements-spark.txt")
if shutil.which("java") is None:
    pytest.skip("no java: apt-get install openjdk-17-jre-headless (.ci/run does)",
                allow_module_level=True)

DAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def real_messages():
    """3,000 real messages of the SMS Spam Collection (texts only)."""
    path = SHARED_CORPUS / "SMSSpamCollection"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not beside the repository)")
    lines = path.read_text(encoding="utf-8").splitlines()[:3000]
    return [line.split("\t", 1)[1] for line in lines]


def _inputs(folder: Path, texts: list[str]) -> dict[str, tuple[Path, Path]]:
    """Each format Spark reads, and the single file the local engine scores as the same
    rows in the same order: (spark input, local input)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"text": texts})
    csv = folder / "messages.csv"
    frame.to_csv(csv, index=False)
    jsonl = folder / "messages.jsonl"
    frame.to_json(jsonl, orient="records", lines=True, force_ascii=False)
    with_ids = folder / "with_ids.parquet"
    frame.assign(id=[f"sms-{i}" for i in range(len(texts))])[["id", "text"]].to_parquet(with_ids)
    parts = folder / "date=2026-11-25"
    parts.mkdir()
    for number, rows in enumerate(np.array_split(np.arange(len(texts)), 3)):
        frame.iloc[rows].to_parquet(parts / f"part-{number:05d}.parquet", index=False)
    return {"csv": (csv, csv), "jsonl": (jsonl, jsonl), "parquet": (with_ids, with_ids),
            "parts": (parts, csv)}


@pytest.fixture(scope="module", autouse=True)
def one_spark_session():
    """BatchScore --engine spark starts a SparkSession and stops it when it is done, so each
    in-process run would start a new SparkContext and new Python workers, each importing
    TensorFlow again (most of a run's time here). For the runs in this module's process
    the first run's session is kept (its stop() does nothing until the module ends, then
    it is stopped): later runs get it from the same ``getOrCreate`` and its warm Python
    workers. Runs through the ``luigi`` command line start their own, as before."""
    from pyspark.sql import SparkSession

    real_stop = SparkSession.stop
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SparkSession, "stop", lambda self: None)
        yield
    session = SparkSession.getActiveSession()
    if session is not None:
        real_stop(session)


def _score(task) -> pd.DataFrame:
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")
    return pd.concat(batch_files.read_scores(task.output().path)).set_index("id")


def _assert_same_scores(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert spark.index.is_unique and set(spark.index) == set(local.index)
    spark = spark.loc[local.index]
    assert (spark.text == local.text).all()
    assert np.abs(spark.spam_probability - local.spam_probability).max() <= 1e-6
    assert (spark.label == local.label).all() and (spark.model_version == 1).all()


def test_spark_scores_every_format_as_the_local_engine_does(chain_copy, real_messages,
                                                             tmp_path):
    outputs, settings = chain_copy
    inputs = _inputs(tmp_path / "incoming", real_messages)
    with luigi_config(settings):
        local = {name: _score(tasks.BatchScore(date=DAY, input=str(local_input)))
                 for name, (_, local_input) in inputs.items() if name != "parts"}
        for name, (spark_input, local_input) in inputs.items():
            task = tasks.BatchScore(date=DAY, input=str(spark_input), engine="spark")
            spark = _score(task)
            assert Path(task.output().path, "_SUCCESS").is_file()
            reference = local["csv" if name == "parts" else name]
            _assert_same_scores(reference, spark)
            if name != "parquet":  # no ids in the input: ids are positions, from 1
                assert sorted(spark.index.astype(int)) == list(range(1, len(real_messages) + 1))
        dataset = pd.read_parquet(task.output().path)  # the last one: the folder of parts
    assert list(dataset.columns) == batch_files.OUTPUT_COLUMNS and len(dataset) == 3000


@pytest.fixture
def standalone_cluster(tmp_path):
    """A Spark master and two workers of one core each, on 127.0.0.1; stopped by pid."""
    from spark_cluster import standalone_cluster

    with standalone_cluster(tmp_path / "spark-cluster", workers=2, cores=1) as cluster:
        yield cluster


def test_a_standalone_cluster_scores_as_local_does(chain_copy, real_messages, tmp_path,
                                                   standalone_cluster):
    outputs, settings = chain_copy
    master, state = standalone_cluster
    assert state["cores"] == 2 and all(w["host"] == "127.0.0.1" for w in state["workers"])
    spark_input, local_input = _inputs(tmp_path / "incoming", real_messages)["parts"]
    cfg = write_cfg(tmp_path / "cluster.cfg", settings)
    started = time.perf_counter()
    result = run_luigi(["BatchScore", "--date", str(DAY), "--input", str(spark_input),
                        "--engine", "spark", "--spark-master", master, "--local-scheduler"],
                       cfg)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    with luigi_config(settings):
        cluster_output = tasks.BatchScore(date=DAY, input=str(spark_input),
                                          engine="spark").output().path
        cluster = pd.concat(batch_files.read_scores(cluster_output)).set_index("id")
        # the local engine on the same rows in one file (local[2] equals it: the test above)
        local = _score(tasks.BatchScore(date=DAY, input=str(local_input)))
    _assert_same_scores(local, cluster)
    print(f"standalone cluster run: {seconds:.1f} s")  # quoted in the closing note


@pytest.mark.parametrize("case, message", [
    ("no_text", "has no 'text' column"),
    ("corrupt_part", "Spark could not score batch input"),
])
def test_bad_input_is_refused_and_nothing_is_published(chain_copy, tmp_path, case, message):
    outputs, settings = chain_copy
    folder = tmp_path / "incoming"
    folder.mkdir()
    if case == "no_text":
        pd.DataFrame({"message": ["hello"]}).to_parquet(folder / "part-0.parquet")
    else:
        pd.DataFrame({"text": ["hello", "WIN now"]}).to_parquet(folder / "part-0.parquet")
        (folder / "part-1.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with luigi_config(settings):
        task = tasks.BatchScore(date=DAY, input=str(folder), engine="spark")
        assert not luigi.build([task], local_scheduler=True, log_level="CRITICAL")
        engine = task.requires()  # BatchScore picks its engine in requires()
        assert isinstance(engine, tasks.ScoreOnSpark)
        with pytest.raises(batch_files.BatchInputError, match=message) as error:
            engine.run()
        assert str(folder) in str(error.value)
        assert not Path(task.output().path).exists()
        assert not list(Path(task.output().path).parent.glob(".*tmp-*"))
        missing = tasks.BatchScore(date=DAY, input=str(tmp_path / "absent/*.parquet"),
                                   engine="spark")
        status = luigi.build([missing], local_scheduler=True, log_level="CRITICAL",
                             detailed_summary=True).status
        assert status == luigi.LuigiStatusCode.MISSING_EXT


def test_a_run_killed_mid_write_publishes_nothing_and_the_next_run_completes(
        chain_copy, real_messages, tmp_path):
    outputs, settings = chain_copy
    big = tmp_path / "big.csv"
    # 24,000 rows: the write stage lasts seconds (its Python workers import TensorFlow)
    pd.DataFrame({"text": real_messages * 8}).to_csv(big, index=False)
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    with luigi_config(settings):
        final = Path(tasks.BatchScore(date=DAY, input=str(big), engine="spark").output().path)
    command = [str(Path(sys.executable).with_name("luigi")), "--module", "pipeline.tasks",
               "BatchScore", "--date", str(DAY), "--input", str(big), "--engine", "spark",
               "--local-scheduler"]
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    run = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(final.parent.glob(f".{final.name}.tmp-*/_temporary")):
        assert run.poll() is None and time.time() < deadline, "the run ended before writing"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not final.exists()
    with luigi_config(settings):  # the next run, in this process (its Spark is warm)
        assert luigi.build([tasks.BatchScore(date=DAY, input=str(big), engine="spark")],
                           local_scheduler=True, log_level="WARNING")
    assert len(pd.read_parquet(final)) == 24_000
    assert not list(final.parent.glob(f".{final.name}.tmp-*"))
