"""What a ``luigi`` command shows in a terminal (``pipeline.tasks.console``): a line as each
task starts and ends, errors of the pipeline's own in one line, and the rest in
``<outputs>/logs/``; ``--log-level DEBUG`` shows everything. DownloadCorpus needs no
TensorFlow, so these runs take a second or two each; the whole chain's terminal is checked
by tests/test_end_to_end.py."""
import os
import re
import subprocess

import pytest

from conftest import LUIGI, REPO, small_pipeline_settings, write_cfg

pytestmark = pytest.mark.slow  # starts the luigi command


def run(tmp_path, settings, *args):
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    result = subprocess.run([LUIGI, "--module", "pipeline.tasks", "DownloadCorpus",
                             "--local-scheduler", *args], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)},
                            timeout=300)
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in result.stderr.splitlines()]
    return result, lines


@pytest.fixture
def settings(tmp_path, small_corpus_zip):
    corpus_zip, sha256 = small_corpus_zip
    return small_pipeline_settings(tmp_path / "outputs", corpus_zip, sha256)


def test_each_task_shows_a_line_as_it_starts_and_ends_and_luigi_writes_to_the_log(
        tmp_path, settings):
    result, lines = run(tmp_path, settings)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert lines[0] == "DownloadCorpus started", lines
    assert re.fullmatch(r"DownloadCorpus done in \d+\.\d s: [\d,]+ messages from 1 source\(s\), "
                        r"[\d,]+ repeated texts dropped", lines[1]), lines
    assert len(lines) == 2, lines
    log = (tmp_path / "outputs" / "logs" / "pipeline.log").read_text()
    assert "Informed scheduler that task   DownloadCorpus_" in log  # Luigi's INFO lines
    assert " INFO pipeline pid=" in log and "DownloadCorpus started" in log  # and ours

    again, lines = run(tmp_path, settings)
    assert again.returncode == 0 and lines == [
        "DownloadCorpus is complete already: nothing to run."], again.stderr


def test_an_error_of_the_pipeline_is_one_line_and_its_traceback_is_in_the_log(
        tmp_path, settings):
    missing = tmp_path / "nowhere.zip"
    settings["DownloadCorpus"] = {**settings["DownloadCorpus"], "url": missing}
    result, lines = run(tmp_path, settings)
    assert result.returncode == 30, result.stderr  # [retcode] task_failed
    assert "Traceback" not in result.stderr, result.stderr
    assert lines[0] == "DownloadCorpus started"
    assert lines[1].startswith("ERROR: [pid ") and "failed    DownloadCorpus(" in lines[1]
    assert re.fullmatch(rf"DownloadCorpus failed after \d+\.\d s: CorpusError: .*{missing}.*",
                        lines[2]), lines
    # then Luigi's summary, which only a run that did not fully succeed shows
    assert "This progress looks :( because there were failed tasks" in lines, lines
    log = (tmp_path / "outputs" / "logs" / "pipeline.log").read_text()
    assert "Traceback (most recent call last)" in log and "CorpusError" in log


def test_log_level_debug_shows_everything_on_the_terminal(tmp_path, settings):
    result, lines = run(tmp_path, settings, "--log-level", "DEBUG")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("DEBUG: Checking if DownloadCorpus(") for line in lines), lines
    assert any(line.startswith("INFO: Informed scheduler") for line in lines), lines
    assert "DownloadCorpus started" in lines
    assert not (tmp_path / "outputs" / "logs" / "stderr.log").exists()  # not redirected
