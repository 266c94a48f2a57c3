"""The whole feedback loop on the small chain, as an operator runs it: a day of a new kind
of spam -> MonitorScores flags drift -> ReviewQueue writes its file -> the operator labels
it -> that file as an extra source -> PromoteVersion retrains and the gate promotes ->
the same kind of day now scores better and its drift figures fall; the next review queue
leaves out what is already labelled."""
import datetime as dt
import json
import random
from pathlib import Path

import luigi
import numpy as np
import pandas as pd

from conftest import luigi_config
from pipeline.scoring import batch_files
from pipeline.serving import model_base
from pipeline.data import spreadsheet_cells
from pipeline import tasks

DAY, NEXT_DAY, AFTER, LATER = (dt.date(2026, 12, 1), dt.date(2026, 12, 2), dt.date(2026, 12, 3),
                               dt.date(2026, 12, 4))
# A kind of spam the small corpus has never seen (its words are all new), with a formula-
# like opening now and then, as spam authors write to reach a spreadsheet.
NEW_SPAM = ["your parcel {n} is held at the depot, pay the customs fee at parcel-{k}.example.com",
            "delivery notice: parcel {n} awaits a redelivery fee, settle it at track-{k}.example.net",
            "=HYPERLINK(\"parcel-{k}.example.com\") customs hold on parcel {n}, pay the fee today",
            "-- courier alert -- parcel {n} returned to depot, fee due at depot-{k}.example.org",
            # a mis-decoded Windows-1252 ellipsis (U+0085) and a line separator: one message
            "parcel {n} held\u0085 customs fee unpaid\u2028pay at fee-{k}.example.com"]
HAM = ["ok see you at {h}pm then", "are you coming home for dinner {d}",
       "haha\u0085 i know, {d} at {h}pm\rthen",
       "i am running late, be there by {h}pm", "meeting moved to {d} at {h}pm",
       "did you watch the match last night {n}", "thanks for the lift {d}"]


def _day(seed: int, spam: int = 120, ham: int = 120) -> tuple[pd.DataFrame, dict]:
    """A day's input (id, text) and the truth an operator would label."""
    rng = random.Random(seed)
    rows = [(rng.choice(NEW_SPAM).format(n=rng.randint(10**5, 10**6), k=rng.randint(1, 999)),
             "spam") for _ in range(spam)]
    rows += [(rng.choice(HAM).format(h=rng.randint(1, 12), n=rng.randint(1, 10**6),
                                     d=rng.choice(["today", "friday", "tonight"])) + f" {i}",
              "ham") for i in range(ham)]
    rng.shuffle(rows)
    frame = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")
    frame.insert(0, "id", [f"s{seed}-{i}" for i in range(len(frame))])
    return frame[["id", "text"]], dict(zip(frame.text, frame.label))


def _build(task) -> luigi.LuigiStatusCode:
    return luigi.build([task], local_scheduler=True, log_level="CRITICAL",
                       detailed_summary=True).status


def _spam_caught(scores_path: str, truth: dict) -> float:
    scores = pd.concat(batch_files.read_scores(scores_path))
    spam = scores[scores.text.map(truth) == "spam"]
    return float((spam.label == "spam").mean())


def test_labelled_recent_messages_reach_production(chain_copy, tmp_path):
    outputs, settings = chain_copy
    base = outputs / "serving" / "spam_ham"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    day, truth = _day(1)
    next_day, next_truth = _day(2)
    day.to_csv(incoming / f"{DAY}.csv", index=False)
    next_day.to_csv(incoming / f"{NEXT_DAY}.csv", index=False)
    settings = {**settings, "ReviewQueue": {"max_rows": 160, "confident_rows": 40},
                "MonitorScores": {"fail_on_drift": "false"}}

    # 1. the new kind of spam arrives: drift is flagged, the doubtful messages are queued
    with luigi_config(settings):
        monitor = tasks.MonitorScores(date=DAY, input=str(incoming / f"{DAY}.csv"))
        assert _build(monitor) == luigi.LuigiStatusCode.SUCCESS
        before = json.loads(Path(monitor.output().path).read_text())
        review = tasks.ReviewQueue(date=DAY, input=str(incoming / f"{DAY}.csv"))
        assert _build(review) == luigi.LuigiStatusCode.SUCCESS
        queue_file = review.output().path
        caught_before = _spam_caught(monitor.scoring().output().path, truth)
        next_monitor = tasks.MonitorScores(date=NEXT_DAY,
                                           input=str(incoming / f"{NEXT_DAY}.csv"))
        assert _build(next_monitor) == luigi.LuigiStatusCode.SUCCESS
        next_before = json.loads(Path(next_monitor.output().path).read_text())
        next_caught_before = _spam_caught(next_monitor.scoring().output().path, next_truth)
    assert before["drift"] is True and before["model_version"] == 1, before["reasons"]
    raw = Path(queue_file).read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in raw and ',"=HYPERLINK' not in raw  # no formula cell

    # 2. the operator labels the queue in a spreadsheet and saves a copy
    queue = pd.read_csv(queue_file, keep_default_na=False, dtype=str)
    assert len(queue) == 160
    exact = queue.text.map(spreadsheet_cells.restore_cell)
    assert exact.isin(list(truth)).all()
    labelled = tmp_path / "feedback" / f"reviewed-{DAY}.csv"
    labelled.parent.mkdir()
    queue.assign(label=exact.map(truth)).to_csv(labelled, index=False)

    # 3. retrain with it as an extra source; the gate judges and publishes version 2
    retrain = {**settings, "DownloadCorpus": {**settings["DownloadCorpus"],
                                              "extra_sources": labelled}}
    with luigi_config(retrain):
        assert _build(tasks.PromoteVersion()) == luigi.LuigiStatusCode.SUCCESS
        table = pd.read_csv(tasks.DownloadCorpus().output_folder() / "messages.csv",
                            keep_default_na=False)
        after = tasks.MonitorScores(date=AFTER, input=str(incoming / f"{NEXT_DAY}.csv"))
        assert _build(after) == luigi.LuigiStatusCode.SUCCESS
        next_after = json.loads(Path(after.output().path).read_text())
        next_caught_after = _spam_caught(after.scoring().output().path, next_truth)
        again = tasks.ReviewQueue(date=AFTER, input=str(incoming / f"{DAY}.csv"))
        assert _build(again) == luigi.LuigiStatusCode.SUCCESS
        queue_again = pd.read_csv(again.output().path, keep_default_na=False, dtype=str)
    assert model_base.live_version(base) == 2
    promoted = model_base.read_audit(base)[-1]
    assert promoted["event"] == "promoted" and promoted["live_version"] == 1
    assert f"reviewed-{DAY}" in promoted["extra_sources"]
    assert set(promoted["verdicts"]) == {"ham", "spam"}
    source = table[table.source == f"reviewed-{DAY}"]
    assert dict(zip(source.text, source.label)) == {t: truth[t] for t in exact}  # exact texts
    assert source.text.str.contains("\u0085").any() and source.text.str.contains("\r").any()

    # 4. the same kind of day scores better, and its drift figures fall
    assert next_after["model_version"] == 2
    assert next_caught_after > next_caught_before, (next_caught_before, next_caught_after)
    assert next_after["oov_share"] < next_before["oov_share"]
    assert next_after["psi"] < next_before["psi"]
    assert caught_before < 1.0

    # 5. the next queue of the same messages leaves out every labelled one: with the file
    # in the configuration, and without it (it is in the corpus table it was trained from)
    with luigi_config(settings):
        later = tasks.ReviewQueue(date=LATER, input=str(incoming / f"{DAY}.csv"))
        assert _build(later) == luigi.LuigiStatusCode.SUCCESS
        queue_later = pd.read_csv(later.output().path, keep_default_na=False, dtype=str)
    for requeued in (queue_again, queue_later):
        again_texts = set(requeued.text.map(spreadsheet_cells.restore_cell))
        assert not again_texts & set(exact)
        assert len(requeued) > 0
        assert np.isin(list(again_texts), list(truth)).all()
