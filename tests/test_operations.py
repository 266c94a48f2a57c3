"""Operations with real processes on 127.0.0.1: a real luigid with task history, the
visualiser in headless Chromium, exit codes for cron, the pid lock, and a backfill shared
by two worker processes."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import luigi
import pandas as pd
import pytest

from conftest import REPO, luigi_config, write_cfg

BIN = Path(sys.executable).parent
TASKS = ["DownloadCorpus", "BuildVocab", "TrainRNN", "ExportSavedModel", "PromoteVersion",
         "ScoreLocally", "BatchScore"]
ARTIFACTS = REPO / "outputs" / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_luigi(args: list[str], cfg: Path, timeout: float = 600, **popen):
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    return subprocess.run([str(BIN / "luigi"), "--module", "pipeline.tasks", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout, **popen)


@pytest.fixture
def luigid(tmp_path):
    """A real luigid on a free loopback port, recording history in SQLite."""
    port = free_port()
    home = tmp_path / "luigid"
    (home / "logs").mkdir(parents=True)
    cfg = write_cfg(home / "luigi.cfg", {
        "scheduler": {"record_task_history": "true", "metrics_collector": "prometheus",
                      "state_path": home / "state.pickle"},
        "task_history": {"db_connection": f"sqlite:///{home / 'history.sqlite'}"},
    })
    process = subprocess.Popen(
        [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port),
         "--state-path", str(home / "state.pickle"), "--logdir", str(home / "logs")],
        cwd=home, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)},
        stdout=subprocess.DEVNULL, stderr=open(home / "luigid.err", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/task_list", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError((home / "luigid.err").read_text())
            time.sleep(0.2)
    yield {"url": url, "port": port, "history": home / "history.sqlite"}
    process.terminate()
    process.wait(timeout=20)


def test_luigid_starts_from_a_fresh_clone_root_with_the_projects_settings(tmp_path):
    """luigid reads ./luigi.cfg ([scheduler]: task history in SQLite, state file) and must
    start in a fresh clone, where outputs/ holds only .gitkeep."""
    project = tmp_path / "clone"
    (project / "outputs").mkdir(parents=True)
    (project / "outputs" / ".gitkeep").touch()
    shutil.copy(REPO / "luigi.cfg", project / "luigi.cfg")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    process = subprocess.Popen([str(BIN / "luigid"), "--address", "127.0.0.1", "--port",
                                str(port)], cwd=project, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list", timeout=2)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read()[-2000:]
                assert time.time() < deadline, "luigid did not answer in 60 s"
                time.sleep(0.2)
        assert (project / "outputs" / "luigid-history.sqlite").is_file()
    finally:
        process.terminate()
        process.wait(timeout=20)


def api(url: str, method: str, data: dict | None = None) -> dict:
    query = "?data=" + urllib.parse.quote(json.dumps(data)) if data is not None else ""
    with urllib.request.urlopen(f"{url}/api/{method}{query}", timeout=10) as response:
        return json.loads(response.read())["response"]


@pytest.fixture
def run_settings(tmp_path, small_chain):
    """luigi.cfg overrides for the small pipeline, with a fresh outputs folder."""
    settings = {**small_chain["settings"],
                "pipeline": {"outputs_root": tmp_path / "outputs"},
                "core": {"lock_pid_dir": tmp_path / "pids"}}
    return settings


def test_pipeline_through_luigid_history_and_visualiser(luigid, run_settings, tmp_path):
    cfg = write_cfg(tmp_path / "run.cfg", run_settings)
    result = run_luigi(["BatchScore", "--date", "2026-11-20", "--scheduler-host", "127.0.0.1",
                        "--scheduler-port", str(luigid["port"])], cfg)
    assert result.returncode == 0, result.stderr[-3000:]

    done = api(luigid["url"], "task_list", {"status": "DONE"})
    families = sorted(task["name"] for task in done.values())
    assert families == sorted(TASKS)
    graph = api(luigid["url"], "graph")
    assert {task["name"] for task in graph.values()} == set(TASKS)
    assert all(task["status"] == "DONE" for task in graph.values())

    with sqlite3.connect(luigid["history"]) as db:
        ran = {name for (name,) in db.execute("SELECT DISTINCT name FROM tasks")}
        events = {event for (event,) in db.execute("SELECT DISTINCT event_name FROM task_events")}
    assert ran == set(TASKS)
    assert {"RUNNING", "DONE"} <= events

    metrics = urllib.request.urlopen(luigid["url"] + "/metrics", timeout=10).read().decode()
    assert "luigi_task_" in metrics

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here: apt-get install chromium (.ci/run does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "luigid-visualiser.png"
    page = f"{luigid['url']}/static/visualiser/index.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000",
             "--window-size=1400,1000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in TASKS:
        assert name in dom.stdout, f"{name} is not on the visualiser page"
    shot = subprocess.run([browser, *flags, f"--screenshot={screenshot}", page],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]


def test_a_failed_run_exits_with_the_task_failed_code(run_settings, tmp_path):
    cfg = write_cfg(tmp_path / "run.cfg", {
        **run_settings,
        "DownloadCorpus": {**run_settings["DownloadCorpus"],
                           "url": f"http://127.0.0.1:{free_port()}/gone.zip",
                           "attempts": 2, "backoff_seconds": 0.01}})
    result = run_luigi(["DownloadCorpus", "--local-scheduler"], cfg)
    assert result.returncode == 30, result.stderr[-2000:]
    assert "could not download" in result.stderr
    assert not (tmp_path / "outputs" / "corpus").exists() or not any(
        p for p in (tmp_path / "outputs" / "corpus").iterdir() if not p.name.startswith("."))


def test_missing_input_exits_with_the_missing_data_code(small_chain, tmp_path):
    settings = {**small_chain["settings"], "core": {"lock_pid_dir": tmp_path / "pids"}}
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    result = run_luigi(["BatchScore", "--input", str(tmp_path / "absent.csv"),
                        "--local-scheduler"], cfg)
    assert result.returncode == 20, result.stderr[-2000:]


class _HeldZip(threading.Thread):
    """An HTTP server that answers only once released (or after ``limit`` seconds): keeps
    the first run busy downloading for exactly as long as the test needs."""

    def __init__(self, payload: bytes, limit: float = 120):
        super().__init__(daemon=True)
        import http.server

        self.requested, self.released = threading.Event(), threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requested.set()
                outer.released.wait(limit)
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow.zip"

    def run(self):
        self.server.serve_forever()


def test_a_second_identical_run_exits_already_running_and_touches_nothing(
        run_settings, small_corpus_zip, tmp_path):
    held = _HeldZip(small_corpus_zip[0].read_bytes())
    held.start()
    cfg = write_cfg(tmp_path / "run.cfg", {
        **run_settings, "DownloadCorpus": {**run_settings["DownloadCorpus"], "url": held.url}})
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    command = [str(BIN / "luigi"), "--module", "pipeline.tasks", "DownloadCorpus",
               "--local-scheduler"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert held.requested.wait(120), "the first run never asked for the corpus"
        assert first.poll() is None, "the first run should still be downloading"
        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 10, second.stderr[-2000:]
        assert first.poll() is None
        assert not (tmp_path / "outputs" / "corpus").exists()
    finally:
        held.released.set()
        out, err = first.communicate(timeout=120)
        held.server.shutdown()
    assert first.returncode == 0, err[-2000:]


def test_two_worker_processes_split_a_backfill_and_run_nothing_twice(
        luigid, chain_copy, tmp_path):
    outputs, settings = chain_copy
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    for day in days:
        pd.DataFrame({"text": [f"message of {day}", "WIN a prize now"]}).to_csv(
            incoming / f"{day}.csv", index=False)
    settings = {**settings, "BatchScore": {"input_pattern": f"{incoming}/{{date}}.csv"},
                "core": {"lock_pid_dir": tmp_path / "pids"}}
    from pipeline import tasks

    with luigi_config(settings):  # one day scored beforehand (in this process)
        assert luigi.build([tasks.BatchScore(date=dt.date.fromisoformat(days[1]))],
                           local_scheduler=True, log_level="WARNING")

    cfg = write_cfg(tmp_path / "run.cfg", settings)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    command = [str(BIN / "luigi"), "--module", "pipeline.tasks", "RangeDaily", "--of",
               "BatchScore", "--start", days[0], "--stop", "2026-11-05",
               "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid["port"]),
               "--worker-keep-alive", "--no-lock", "--log-level", "INFO"]  # luigi's lines
    workers = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=600)[1] for w in workers]
    # A process whose remaining tasks were finished by the other one exits not_run (25), or
    # already_running (10) if the other was still running one when it stopped, as luigi's
    # [retcode] documents; it must never report a failure (30 and above).
    assert {w.returncode for w in workers} <= {0, 10, 25}, logs[0][-2000:] + logs[1][-2000:]
    assert not any("failed" in log.split("Execution Summary")[-1] for log in logs)

    ran = [[line.split("ScoreLocally(date=")[1][:10] for line in log.splitlines()
            if " done " in line and "ScoreLocally(date=" in line] for log in logs]
    assert sorted(ran[0] + ran[1]) == [days[0], days[2], days[3]], ran  # only missing days
    assert ran[0] and ran[1], f"both workers should have scored a day: {ran}"
    for day in days:
        [scores] = (outputs / "scores" / day).glob("*.csv")
        assert len(pd.read_csv(scores)) == 2
    # what the next cron run sees: all done, exit 0 (the same command without --no-lock)
    again = run_luigi(command[3:-3] + command[-2:], cfg)
    assert again.returncode == 0, again.stderr[-2000:]
    assert " ran successfully" not in again.stderr.split("Execution Summary")[-2]


def test_two_workers_on_four_shards_equal_a_single_worker_run(chain_copy, tmp_path):
    outputs, settings = chain_copy
    messages = tmp_path / "batch.jsonl"
    texts = [f"message {i}: " + ("WIN £1000 call 09061234567 " if i % 3 == 0 else "see you")
             * (i % 5) for i in range(230)]
    pd.DataFrame({"id": [f"m{i}" for i in range(230)], "text": texts}).to_json(
        messages, orient="records", lines=True)
    cfg = write_cfg(tmp_path / "run.cfg", {**settings,
                                           "core": {"lock_pid_dir": tmp_path / "pids"}})
    common = ["BatchScore", "--input", str(messages), "--chunk-rows", "25", "--local-scheduler"]
    from pipeline import tasks

    with luigi_config(settings):  # the single-worker run, in this process
        assert luigi.build([tasks.BatchScore(input=str(messages), chunk_rows=25,
                                             date=dt.date(2026, 11, 10))],
                           local_scheduler=True, log_level="WARNING")
    sharded = run_luigi([*common, "--date", "2026-11-11", "--shards", "4", "--workers", "2",
                         "--log-level", "INFO"], cfg)  # luigi's lines name each worker's pid
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    pids = {line.split("[pid ")[1].split("]")[0] for line in sharded.stderr.splitlines()
            if " running " in line and "ScoreShard(" in line}
    # with --workers 2 luigi runs each task in a forked worker process, two at a time
    assert len(pids) == 4, f"each shard should run in a worker process of its own: {pids}"
    assert sharded.stderr.count(" done      ScoreShard(") == 4
    # what the terminal ends with, though each task ran in a forked worker process
    last = [line[9:] for line in sharded.stderr.splitlines()
            if line[8:].startswith((" Scores: ", " Model: "))]
    assert len(last) == 2 and last[0].endswith("(230 rows, scored with version 1)"), last
    assert last[1].startswith("Model:  version 1 (live) under "), last
    assert "complete already" not in sharded.stderr
    [one] = (outputs / "scores" / "2026-11-10").glob("batch-*.csv")
    [joined] = (outputs / "scores" / "2026-11-11").glob("batch-*.csv")
    assert joined.read_bytes() == one.read_bytes()
    assert len(pd.read_csv(one)) == 230


def test_the_readme_cron_line_is_silent_on_success_and_one_line_on_failure(luigid, small_chain,
                                                                           tmp_path):
    """The README's nightly crontab command, run as cron would (from the project folder,
    relative paths, through luigid), against the small pipeline: it scores yesterday and
    prints nothing (cron mails nothing); a day whose file is missing prints one line and
    exits 20. Logs go to outputs/logs/."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "logging.conf", project / "logging.conf")
    shutil.copy(REPO / "luigi.cfg", project / "luigi.cfg")
    shutil.copytree(small_chain["outputs"], project / "outputs", symlinks=True,
                    ignore=shutil.ignore_patterns("logs"))  # other tests' runs logged there
    (project / "incoming").mkdir()
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    pd.DataFrame({"text": ["WIN a prize now", "see you"]}).to_csv(
        project / "incoming" / f"{yesterday}.csv", index=False)
    settings = {**small_chain["settings"], "pipeline": {"outputs_root": "outputs"},
                "core": {"lock_pid_dir": tmp_path / "pids",
                         "scheduler_port": luigid["port"]}}
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    readme = (REPO / "README.md").read_text()
    [cron] = [line for line in readme.splitlines() if line.startswith("0 2 * * *")]
    command = cron.split("&& ", 1)[1].replace(".venv/bin/", f"{BIN}/")
    command = command.replace("\\%", "%")  # cron turns \% into %

    def as_cron(line):  # cron's environment is nearly empty: no TF_CPP_MIN_LOG_LEVEL here
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LUIGI_CONFIG_PATH": str(cfg)}
        return subprocess.run(["bash", "-c", line], cwd=project, capture_output=True,
                              text=True, timeout=600, env=env)

    for attempt in ("scores yesterday", "finds it done"):
        result = as_cron(command)
        assert result.returncode == 0, (attempt, result.stdout + result.stderr[-2000:])
        assert result.stdout == "" and result.stderr == "", (attempt, result.stdout,
                                                              result.stderr)
    [scores] = (project / "outputs" / "scores" / yesterday).glob("*.csv")
    assert len(pd.read_csv(scores)) == 2
    log = (project / "outputs" / "logs" / "pipeline.log").read_text()
    assert "BatchScore" in log and "This progress looks :)" in log
    assert "spam-ham-cron" not in log
    stderr_log = (project / "outputs" / "logs" / "stderr.log").read_text()
    assert stderr_log.count("--- ") == 2 and "BatchScore" in stderr_log

    missing = as_cron(command.replace(yesterday, "2001-01-01").replace(
        "$(date -d yesterday +%F)", "2001-01-01"))
    assert missing.returncode == 20, missing.stdout + missing.stderr
    assert missing.stdout == ""
    [line] = missing.stderr.splitlines()
    assert line.startswith("spam-ham-cron: exit 20 (missing data): ") and "2001-01-01.csv" in line
    assert line.endswith("logs in outputs/logs/"), line
