"""ReviewQueue and MonitorScores on real scores of the small chain: a day of the test split
is not drift, a day of another collection is; the review queue re-enters as a source."""
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, luigi_config, write_cfg
from pipeline.scoring import batch_files
from pipeline.data import corpus
from pipeline.monitoring import review_queue
from pipeline.data import spreadsheet_cells
from pipeline import tasks
from test_operations import ARTIFACTS, run_luigi

SUPER = REPO.parent / "shared" / "data" / "sms-ood-dev" / "super_sms_legacy.tsv"
TEST_DAY, OTHER_DAY = dt.date(2026, 11, 23), dt.date(2026, 11, 24)


@pytest.fixture
def other_collection(tmp_path):
    """400 messages of super_sms_legacy as a day's input (id, text), and their labels."""
    if not SUPER.is_file():
        pytest.skip(f"{SUPER} is absent (../shared is not beside the repository)")
    labelled = pd.read_csv(SUPER, sep="\t", names=["label", "text"], quoting=3,
                           keep_default_na=False).head(400)
    path = tmp_path / "incoming" / f"{OTHER_DAY}.csv"
    path.parent.mkdir()
    labelled.assign(id=[f"m{i}" for i in range(len(labelled))])[["id", "text"]].to_csv(
        path, index=False)
    return path, dict(zip(labelled.text, labelled.label))


def _build(task, **overrides):
    return luigi.build([task], local_scheduler=True, log_level="CRITICAL",
                       detailed_summary=True, **overrides).status


def test_a_day_like_the_test_split_is_not_drift_and_another_collection_is(
        chain_copy, other_collection, tmp_path):
    outputs, settings = chain_copy
    day_file, _ = other_collection
    with luigi_config(settings):
        same = tasks.MonitorScores(date=TEST_DAY)
        assert _build(same) == luigi.LuigiStatusCode.SUCCESS
        quiet = json.loads(Path(same.output().path).read_text())
        other = tasks.MonitorScores(date=OTHER_DAY, input=str(day_file))
        assert _build(other) == luigi.LuigiStatusCode.FAILED
        figures = Path(other.output().path)
        assert figures.is_file()  # the figures are written, then the task fails
        with pytest.raises(tasks.DriftDetected, match="max_oov_share"):
            other.run()
    table = corpus.read_corpus_table(next((outputs / "corpus").iterdir()) / "messages.csv")
    assert quiet["rows"] == int((table.split == "test").sum())
    assert quiet["drift"] is False and quiet["reasons"] == []
    assert quiet["psi"] < 0.01  # the same messages as the reference, scored by the same model
    assert quiet["oov_share"] == pytest.approx(quiet["reference"]["oov_share"])
    assert sum(quiet["histogram"]["counts"]) == quiet["rows"]

    drifted = json.loads(figures.read_text())
    assert drifted["drift"] is True and drifted["rows"] == 400
    assert drifted["oov_share"] > 0.5 and drifted["model_version"] == 1
    assert any("max_oov_share" in reason for reason in drifted["reasons"])

    page = (outputs / "monitoring" / "report.html").read_text()
    assert str(TEST_DAY) in page and str(OTHER_DAY) in page and "max_oov_share" in page
    families = {f.name: f for f in text_string_to_metric_families(
        (outputs / "monitoring" / "spam_ham.prom").read_text())}
    drift = families["spam_ham_monitor_drift"].samples[0]
    assert drift.value == 1 and drift.labels["model_version"] == "1"
    assert families["spam_ham_monitor_rows"].samples[0].value == 400
    _look_at(outputs / "monitoring" / "report.html", tmp_path)


def _look_at(page: Path, tmp_path: Path) -> None:
    """Open the report in Chromium: it renders its table and figure (screenshot kept)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here: apt-get install chromium (.ci/run does)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1200,1400"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0 and str(OTHER_DAY) in dom.stdout, dom.stderr[-2000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "monitoring-report.png"
    result = subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.stat().st_size > 20_000, result.stderr[-2000:]


def test_drift_exits_with_the_task_failed_code_unless_told_only_to_log(
        chain_copy, other_collection, tmp_path):
    outputs, settings = chain_copy
    day_file, _ = other_collection
    cfg = write_cfg(tmp_path / "run.cfg", {**settings, "retcode": {"task_failed": 30}})
    args = ["MonitorScores", "--date", str(OTHER_DAY), "--input", str(day_file),
            "--local-scheduler"]
    failed = run_luigi(args, cfg)
    assert failed.returncode == 30, failed.stderr[-2000:]
    assert "DriftDetected" in failed.stderr and "max_oov_share" in failed.stderr
    shutil.rmtree(outputs / "monitoring")
    logged = run_luigi([*args, "--MonitorScores-fail-on-drift", "false"], cfg)
    assert logged.returncode == 0, logged.stderr[-2000:]
    assert "drift on" in logged.stderr


def test_the_review_queue_holds_the_doubtful_messages_and_reenters_as_a_source(
        chain_copy, other_collection, tmp_path):
    outputs, settings = chain_copy
    day_file, truth = other_collection
    queue_settings = {**settings, "ReviewQueue": {"max_rows": 30, "confident_rows": 5}}
    with luigi_config(queue_settings):
        task = tasks.ReviewQueue(date=OTHER_DAY, input=str(day_file))
        assert _build(task) == luigi.LuigiStatusCode.SUCCESS
        scores = pd.concat(batch_files.read_scores(task.scoring().output().path))
        queue_path = task.output().path
        threshold = json.loads((outputs / "serving" / "spam_ham" / "1" / "assets.extra"
                                / "provenance.json").read_text())["threshold"]
    queue = pd.read_csv(queue_path, keep_default_na=False, dtype={"id": str})
    assert list(queue.columns) == review_queue.QUEUE_COLUMNS
    assert len(queue) == 30 and queue.text.is_unique and (queue.label == "").all()
    near = queue[queue.reason == review_queue.NEAR_THRESHOLD]
    sample = queue[queue.reason == review_queue.CONFIDENT_SAMPLE]
    sure = np.maximum(scores.spam_probability, 1 - scores.spam_probability) >= 0.95
    assert len(sample) == min(5, scores[sure].text.nunique()) > 0
    assert (np.maximum(sample.spam_probability, 1 - sample.spam_probability) >= 0.95).all()

    def distance(p):
        p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
        return np.abs(np.log(p / (1 - p)) - np.log(threshold / (1 - threshold)))

    unsure = scores[~sure]
    left_out = unsure[~unsure.text.isin(near.text)]
    assert distance(near.spam_probability).max() <= distance(left_out.spam_probability).min() + 1e-6
    assert (np.diff(distance(near.spam_probability)) >= -1e-6).all()  # nearest first
    assert set(queue.id) <= set(scores.id)

    exact = queue.text.map(spreadsheet_cells.restore_cell)  # formula-like cells neutralised
    labelled = tmp_path / "reviewed-2026-11-24.csv"
    queue.assign(label=exact.map(truth)).to_csv(labelled, index=False)
    with luigi_config({**settings, "DownloadCorpus": {**settings["DownloadCorpus"],
                                                      "extra_sources": labelled}}):
        assert _build(tasks.DownloadCorpus()) == luigi.LuigiStatusCode.SUCCESS
        table = corpus.read_corpus_table(tasks.DownloadCorpus().output_folder() / "messages.csv")
    reviewed = table[table.source == "reviewed-2026-11-24"]
    assert len(reviewed) == 30
    assert dict(zip(reviewed.text, reviewed.label)) == {t: truth[t] for t in exact}


def test_an_empty_day_is_an_error_for_review_and_monitoring(chain_copy, tmp_path):
    outputs, settings = chain_copy
    empty = tmp_path / "empty.csv"
    empty.write_text("id,text\n")
    with luigi_config(settings):
        for task in (tasks.ReviewQueue(date=OTHER_DAY, input=str(empty)),
                     tasks.MonitorScores(date=OTHER_DAY, input=str(empty))):
            assert _build(task) == luigi.LuigiStatusCode.FAILED
            assert not Path(task.output().path).exists()
            with pytest.raises(batch_files.BatchInputError, match="has no rows"):
                task.run()
        missing = tasks.MonitorScores(date=OTHER_DAY, input=str(tmp_path / "absent.csv"))
        assert _build(missing) == luigi.LuigiStatusCode.MISSING_EXT
