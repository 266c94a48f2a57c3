"""Every task says what it is doing the same way under the local scheduler and under a real
luigid: the status line and progress bar each task sets arrive at the scheduler either
way, with the same words (paths aside)."""
import datetime as dt
import re

import luigi
import luigi.rpc
import luigi.scheduler
import luigi.worker
import pytest

from conftest import luigi_config, small_pipeline_settings
from test_operations import luigid  # noqa: F401 - the real luigid fixture

from pipeline import tasks

pytestmark = pytest.mark.slow
DAY = dt.date(2026, 11, 21)
# Tasks that only wire (an external file, BatchScore choosing its engine) report nothing.
SILENT = {"MessagesFile", "BatchScore"}


def _run_and_read(scheduler, outputs, corpus_zip, sha256, messages) -> dict:
    """Run the whole chain and a day's scoring, review queue and monitoring with
    ``scheduler``; return each task's status line and progress as the scheduler has them."""
    settings = small_pipeline_settings(outputs, corpus_zip, sha256)
    settings["MonitorScores"] = {"fail_on_drift": "false"}
    with luigi_config(settings):
        wanted = [tasks.MonitorScores(date=DAY, input=str(messages)),
                  tasks.ReviewQueue(date=DAY, input=str(messages))]
        with luigi.worker.Worker(scheduler=scheduler, worker_processes=1) as worker:
            assert all(worker.add(task) for task in wanted)
            assert worker.run()
    done = scheduler.task_list("DONE", "")
    reports = {}
    for task_id, task in done.items():
        message = scheduler.get_task_status_message(task_id)["statusMessage"]
        progress = scheduler.get_task_progress_percentage(task_id)["progressPercentage"]
        reports[task["name"]] = ((message or "").replace(str(outputs), "<outputs>"), progress)
    return reports


def test_each_task_reports_the_same_with_and_without_luigid(luigid, small_corpus_zip,  # noqa: F811
                                                            tmp_path):
    corpus_zip, sha256 = small_corpus_zip
    messages = tmp_path / "day.csv"
    messages.write_text("id,text\n1,WIN a free prize now! call 09061234567\n"
                        "2,are we still on for lunch?\n3,ok see you at 8\n", encoding="utf-8")
    local = _run_and_read(luigi.scheduler.Scheduler(), tmp_path / "local" / "outputs",
                          corpus_zip, sha256, messages)
    remote = _run_and_read(luigi.rpc.RemoteScheduler(luigid["url"]),
                           tmp_path / "remote" / "outputs", corpus_zip, sha256, messages)
    assert set(local) == {"DownloadCorpus", "BuildVocab", "TrainRNN", "ExportSavedModel",
                          "PromoteVersion", "MessagesFile", "ScoreLocally", "BatchScore",
                          "ReviewQueue", "MonitorScores"}
    for name, (message, _) in local.items():
        assert bool(message) != (name in SILENT), f"{name}: {message!r}"
    assert remote == local
    assert local["ScoreLocally"] == ("scored 3 rows with version 1", 100)
    assert re.fullmatch(r"\d+ epochs; threshold 0\.\d{3}: test MCC -?[01]\.\d{4}, spam caught "
                        r"\d+\.\d%, ham blocked \d+\.\d\d%", local["TrainRNN"][0]), local["TrainRNN"]
    assert local["TrainRNN"][1] > 0
