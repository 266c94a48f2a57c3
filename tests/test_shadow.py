"""Shadow scoring (pipeline.scoring.shadow): the promotion's comparison of the candidate
with the live version on the recent scored days, its gate rule, and ``spam-ham-versions
diff``; on real trainings of the small corpus. The first test checks the counting itself
with two plain scoring functions, without TensorFlow."""
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, luigi_config, write_cfg
from pipeline.data import labelled_files
from pipeline.scoring import batch_files, shadow
from pipeline.serving import model_base

BIN = Path(sys.executable).parent
DAY = "2026-11-20"


def _keyword_scorer(words: tuple[str, ...], threshold: float):
    """A scoring function with the signature's shape: probability by keyword count."""
    def score(texts: list[str]):
        hits = np.array([sum(w in t.lower() for w in words) for t in texts], np.float32)
        probabilities = hits / (hits + 1)
        return probabilities, np.where(probabilities >= threshold, "spam", "ham")
    return score


def test_the_tally_counts_each_flip_once_in_chunks_and_writes_every_one(tmp_path):
    texts = ["win a prize", "win cash now", "lunch at noon", "free prize win", "call me",
             "cash", "see you", "free", "win", "prize money free cash"] * 7
    frame = pd.DataFrame({"id": [f"m{i}" for i in range(len(texts))], "text": texts})
    baseline = shadow.Side("version 1", 1, _keyword_scorer(("win", "prize"), 0.5))
    candidate = shadow.Side("version 2", 2, _keyword_scorer(("cash", "free"), 0.5))
    chunks = (frame.iloc[start:start + 9] for start in range(0, len(frame), 9))
    summary = shadow.compare(chunks, baseline, candidate, tmp_path / "out", batch_size=4,
                             about={"input": "test"})

    before = baseline.score(texts)[1] == "spam"
    after = candidate.score(texts)[1] == "spam"
    assert summary["messages"] == len(texts) and summary["input"] == "test"
    assert summary["newly_blocked"]["count"] == int((after & ~before).sum()) > 0
    assert summary["newly_passed"]["count"] == int((before & ~after).sum()) > 0
    assert summary["newly_blocked"]["share_of_passed"] == pytest.approx(
        (after & ~before).sum() / (~before).sum())
    assert summary["baseline"]["spam"] == before.sum()
    assert sum(summary["candidate"]["histogram"]) == len(texts)
    flips = pd.read_csv(summary["flips_file"], dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
    assert list(flips.columns) == shadow.FLIP_COLUMNS
    assert flips["id"].tolist() == frame["id"][before != after].tolist()  # input order
    assert set(flips["reason"]) == {shadow.NEWLY_BLOCKED, shadow.NEWLY_PASSED}
    changes = [abs(f["candidate_probability"] - f["baseline_probability"])
               for f in summary["largest_flips"]]
    assert len(changes) == shadow.LARGEST_FLIPS and changes == sorted(changes, reverse=True)
    assert json.loads((tmp_path / "out" / shadow.SUMMARY_FILE).read_text()) == summary

    policy = shadow.ShadowPolicy(gate=True, max_newly_blocked=0.01)
    reason = shadow.refusal(summary, policy)
    assert f"newly blocks {summary['newly_blocked']['count']:,} of the" in reason
    assert summary["flips_file"] in reason
    assert shadow.refusal(summary, shadow.ShadowPolicy(gate=False)) is None


def test_recent_days_are_read_newest_first_up_to_the_cap_and_only_from_scores_files(tmp_path):
    def scores(day: str, name: str, rows: int) -> Path:
        path = tmp_path / day / name
        path.parent.mkdir(exist_ok=True)
        pd.DataFrame({"id": [f"{day}-{i}" for i in range(rows)], "text": [f"m{i}" for i in range(rows)],
                      "spam_probability": 0.1, "label": "ham", "model_version": 1}
                     ).to_csv(path, index=False)
        return path

    scores("2026-11-01", "old.csv", 5)
    scores("2026-11-02", "a.csv", 3)
    scores("2026-11-03", "b.csv", 4)
    sharded = scores("2026-11-03", "c.csv", 2)
    parts = tmp_path / "2026-11-03" / "c.shards"  # a sharded run's parts: already in c.csv
    parts.mkdir()
    pd.read_csv(sharded).to_parquet(parts / "part-0-of-1-v1-c25.parquet")
    (tmp_path / "2026-11-03" / "c.csv.input.json").write_text("{}")
    (tmp_path / "2026-11-03" / ".c.csv.tmp-1-ab").write_text("half")
    (tmp_path / "notes").mkdir()

    found, read, chunks = shadow.recent_scored_messages(tmp_path, days=2, max_messages=8,
                                                        chunk_rows=2)
    ids = pd.concat(list(chunks))["id"].tolist()
    assert found == ["2026-11-03/b.csv", "2026-11-03/c.csv", "2026-11-02/a.csv"]
    assert ids == [f"2026-11-03-{i}" for i in (0, 1, 2, 3, 0, 1)] + ["2026-11-02-0",
                                                                      "2026-11-02-1"]
    assert read == found  # the cap stopped inside the last file
    found, read, chunks = shadow.recent_scored_messages(tmp_path, days=2, max_messages=4)
    assert len(pd.concat(list(chunks))) == 4 and read == ["2026-11-03/b.csv"]
    assert shadow.recent_scored_messages(tmp_path / "none", 7, 10)[0] == []


def _with(settings, section, **options):
    return {**settings, section: {**settings.get(section, {}), **options}}


LAX = {"min_mcc": -1, "max_ham_blocked": 1, "min_spam_caught": 0, "max_ham_blocked_rise": 1,
       "max_spam_caught_drop": 1}
DAY_MESSAGES = (["are we still on for lunch tomorrow?", "ok i'll bring the charger",
                 "call me when you get home", "sorry, running late, see you at 8",
                 "did you get the tickets for saturday", "happy birthday! have a great day",
                 "WIN a free prize now! call 09061234567", "URGENT! claim your cash award",
                 "Free entry to win a holiday, text WIN to 80808"] * 6)


@pytest.fixture(scope="module")
def candidate_chain(small_chain, tmp_path_factory):
    """The small chain's outputs (version 1 live) with a scored day (by version 1) and a
    staged candidate trained with another seed and a looser threshold (it blocks more)."""
    root = tmp_path_factory.mktemp("shadow")
    outputs = root / "outputs"
    shutil.copytree(small_chain["outputs"], outputs, symlinks=True)
    settings = {**small_chain["settings"], "pipeline": {"outputs_root": outputs}}
    day = root / "day.csv"
    pd.DataFrame({"id": [f"d{i}" for i in range(len(DAY_MESSAGES))],
                  "text": DAY_MESSAGES}).to_csv(day, index=False)
    from pipeline import tasks

    with luigi_config(settings):
        assert luigi.build([tasks.BatchScore(date=pd.Timestamp(DAY).date(), input=str(day))],
                           local_scheduler=True, log_level="WARNING")
    candidate = _with(settings, "TrainRNN", seed=7, max_ham_blocked=0.5, min_threshold=0.02)
    with luigi_config(candidate):
        assert luigi.build([tasks.ExportSavedModel()], local_scheduler=True,
                           log_level="WARNING")
        staged = tasks.ExportSavedModel().output_folder()
    return {"outputs": outputs, "settings": candidate, "day": day, "staged": staged}


@pytest.fixture
def chain(candidate_chain, tmp_path):
    """A private copy of it."""
    outputs = tmp_path / "outputs"
    shutil.copytree(candidate_chain["outputs"], outputs, symlinks=True)
    staged = outputs / candidate_chain["staged"].relative_to(candidate_chain["outputs"])
    return outputs, {**candidate_chain["settings"], "pipeline": {"outputs_root": outputs}}, staged


def _promote(settings, **options):
    from pipeline import tasks

    with luigi_config(_with(settings, "PromoteVersion", **options)):
        task = tasks.PromoteVersion()
        messages = []
        task.set_status_message = messages.append
        task.set_progress_percentage = lambda percent: None
        try:
            task.run()
        finally:
            export_id = task.requires()["export"].fingerprint()
    return messages, export_id


def test_the_promotion_counts_the_flips_on_the_scored_days_exactly(chain):
    from pipeline.serving.exported_model import ServingSignature

    outputs, settings, staged = chain
    messages, export_id = _promote(settings, **LAX)
    base = outputs / "serving" / "spam_ham"
    assert model_base.serving_versions(base) == [1, 2]
    folder = model_base.shadow_folder(base, export_id)
    summary = json.loads((folder / shadow.SUMMARY_FILE).read_text())

    [scores] = (outputs / "scores" / DAY).glob("day-*.csv")  # by hand: both versions
    texts = pd.concat(batch_files.read_scores(scores))["text"].tolist()
    live = ServingSignature(base / "1")(texts)[1] == "spam"
    new = ServingSignature(staged)(texts)[1] == "spam"
    assert summary["messages"] == len(texts) == len(DAY_MESSAGES)
    assert summary["scored_files"] == [f"{DAY}/{scores.name}"]
    assert summary["newly_blocked"]["count"] == int((new & ~live).sum()) > 0
    assert summary["newly_passed"]["count"] == int((live & ~new).sum())
    flips = pd.read_csv(folder / shadow.FLIPS_FILE, dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
    assert len(flips) == int((live != new).sum())
    assert set(flips["scored_in"]) == {f"{DAY}/{scores.name}"}
    assert messages[-1].endswith(shadow.headline(summary)), messages
    audit = model_base.read_audit(base)[-1]
    assert audit["event"] == "promoted"
    assert audit["shadow"]["newly_blocked"] == summary["newly_blocked"]
    assert "text" not in json.dumps(audit["shadow"])  # no message texts in the audit log

    # the monitoring of a day after the promotion marks it, links the summary and carries
    # the flip shares to Prometheus
    from pipeline import tasks

    today = dt.datetime.now(dt.timezone.utc).date()  # the audit log's day
    with luigi_config(_with(settings, "MonitorScores", fail_on_drift="false")):
        assert luigi.build([tasks.MonitorScores(date=today, input=str(scores))],
                           local_scheduler=True, log_level="WARNING")
    report = (outputs / "monitoring" / "report.html").read_text(encoding="utf-8")
    [href] = set(re.findall(r'<a href="([^"]+)">shadow: ', report))  # list and table
    assert (outputs / "monitoring" / href).resolve() == (folder / shadow.SUMMARY_FILE).resolve()
    prom = (outputs / "monitoring" / "spam_ham.prom").read_text()
    [line] = [ln for ln in prom.splitlines()
              if ln.startswith("spam_ham_promotion_newly_blocked_share{")]
    assert 'version="2"' in line
    assert float(line.split()[-1]) == pytest.approx(summary["newly_blocked"]["share_of_passed"])

    flips["label"] = np.where(flips["reason"] == shadow.NEWLY_BLOCKED, "ham", "spam")
    labelled = folder / "labelled.csv"  # an operator's labels: a valid extra source
    flips.to_csv(labelled, index=False)
    read = labelled_files.parse_labelled(labelled.read_bytes(), str(labelled), "test")
    assert list(read.texts) == flips["text"].tolist()


def test_the_shadow_rule_refuses_naming_the_count_and_the_file_and_force_publishes(chain):
    from pipeline.serving import promotion

    outputs, settings, _ = chain
    base = outputs / "serving" / "spam_ham"
    with pytest.raises(promotion.PromotionRefused) as refused:
        _promote(settings, **LAX, shadow_gate="true", shadow_max_newly_blocked=0.0)
    message = str(refused.value)
    refusal = model_base.read_audit(base)[-1]
    assert refusal["event"] == "refused" and model_base.serving_versions(base) == [1]
    count = refusal["shadow"]["newly_blocked"]["count"]
    flips = Path(refusal["shadow"]["summary_file"]).with_name(shadow.FLIPS_FILE)
    assert f"newly blocks {count:,} of the" in message and str(flips) in message
    assert "shadow_max_newly_blocked" in message and "--PromoteVersion-force" in message

    _promote(settings, **LAX, shadow_gate="true", shadow_max_newly_blocked=0.0, force="true")
    promoted = model_base.read_audit(base)[-1]
    assert promoted["event"] == "promoted" and model_base.serving_versions(base) == [1, 2]
    assert any(reason.startswith("shadow scoring:") for reason in promoted["forced_past"])
    assert promoted["shadow"]["newly_blocked"]["count"] == count


def test_a_promotion_with_no_scored_days_passes_and_says_why(chain):
    outputs, settings, _ = chain
    shutil.rmtree(outputs / "scores")
    messages, _ = _promote(settings, **LAX, shadow_gate="true", shadow_max_newly_blocked=0.0)
    base = outputs / "serving" / "spam_ham"
    assert model_base.serving_versions(base) == [1, 2]
    note = model_base.read_audit(base)[-1]["shadow"]["note"]
    assert note.startswith("no scored days under ") and note.endswith("it passes")
    assert any(note in message for message in messages), messages


def test_diff_gives_the_same_summary_for_a_csv_and_a_parquet_file(chain, tmp_path):
    outputs, settings, _ = chain
    _promote(settings, **LAX, shadow_days=0)  # version 2, without a shadow step
    day = pd.DataFrame({"id": [f"d{i}" for i in range(len(DAY_MESSAGES))],
                        "text": DAY_MESSAGES})
    day.to_csv(tmp_path / "day.csv", index=False)
    day.to_parquet(tmp_path / "day.parquet", index=False)
    cfg = write_cfg(tmp_path / "luigi.cfg", settings)
    summaries = []
    for name in ("day.csv", "day.parquet"):
        result = subprocess.run(
            [str(BIN / "spam-ham-versions"), "--config", str(cfg), "diff", "1", "live",
             "--input", str(tmp_path / name), "--json", "--output", str(tmp_path / name[4:])],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "I0000" not in result.stderr and "cuInit" not in result.stderr  # in the log
        summaries.append(json.loads(result.stdout))
    for summary, name in zip(summaries, ("csv", "parquet")):
        assert summary.pop("input").endswith(f"day.{name}")
        assert summary.pop("flips_file") == str(tmp_path / name / shadow.FLIPS_FILE)
    assert summaries[0] == summaries[1]
    assert summaries[0]["messages"] == len(DAY_MESSAGES)
    assert summaries[0]["baseline"]["name"] == "version 1"
    assert summaries[0]["candidate"]["version"] == 2
    assert summaries[0]["newly_blocked"]["count"] > 0  # the looser candidate blocks more
    assert (summaries[0]["newly_blocked"]["count"] + summaries[0]["newly_passed"]["count"]
            == len(pd.read_csv(tmp_path / "csv" / shadow.FLIPS_FILE, encoding="utf-8-sig")))
