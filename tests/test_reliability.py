"""Bad networks, bad files, killed processes, full disks: the pipeline ends with the work
done and correct, or failed with a clear message, and the next run picks up cleanly."""
from __future__ import annotations

import http.server
import os
import resource
import shutil
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import luigi
import pandas as pd
import psutil
import pytest

from conftest import LUIGI, REPO, luigi_config, write_cfg, zip_bytes
from pipeline.scoring import batch_files
from pipeline.data import corpus, download
from pipeline.serving import export
from pipeline.serving import exported_model
from pipeline.scoring import local_engine
from pipeline.serving import model_base
from pipeline import tasks

FAST = download.DownloadPolicy(connect_timeout=1, read_timeout=1, attempts=2,
                             backoff_seconds=0.01)


# --------------------------------------------------------------------------- downloads

class _Server(threading.Thread):
    def __init__(self, handler, tls_context=None):
        super().__init__(daemon=True)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls_context:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/c.zip"

    def run(self):
        self.server.serve_forever()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _handler(behaviour):
    class Handler(http.server.BaseHTTPRequestHandler):
        calls = 0

        def do_GET(self):
            type(self).calls += 1
            behaviour(self)

        def log_message(self, *args):
            pass
    return Handler


def _hang(request):
    time.sleep(3)


def _cut_short(request):
    request.send_response(200)
    request.send_header("Content-Length", "100000")
    request.end_headers()
    request.wfile.write(b"PK" + b"x" * 500)
    request.wfile.flush()
    request.close_connection = True


def _always_500(request):
    request.send_error(503)


@pytest.mark.parametrize("behaviour, message", [
    (_hang, "Read timed out"), (_cut_short, ""), (_always_500, "HTTP 503")])
def test_unreliable_servers_are_retried_then_fail_clearly(behaviour, message):
    handler = _handler(behaviour)
    with _Server(handler) as server:
        with pytest.raises(corpus.CorpusError, match="after 2 attempts") as error:
            download.fetch(server.url, FAST)
    assert message in str(error.value)
    assert handler.calls == 2


def test_tls_certificates_are_verified(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def serve(request):
        request.send_response(200)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")
    with _Server(_handler(serve), context) as server:
        with pytest.raises(corpus.CorpusError, match="CERTIFICATE_VERIFY_FAILED"):
            download.fetch(server.url, FAST)


@pytest.mark.parametrize("archive, sha, message", [
    ("wrong_sha", "0" * 64, "expected " + "0" * 64),
    ("not_zip", None, "not a zip archive"),
    ("garbage_lines", None, "malformed"),
])
def test_a_bad_corpus_fails_the_task_and_writes_no_target(tmp_path, small_corpus, archive,
                                                           sha, message):
    import hashlib
    members = {"wrong_sha": zip_bytes({"SMSSpamCollection": small_corpus}),
               "not_zip": b"<html>moved</html>",
               "garbage_lines": zip_bytes({"SMSSpamCollection": b"ham\tok\n" + b"junk\n" * 9})}
    path = tmp_path / "c.zip"
    path.write_bytes(members[archive])
    digest = sha or hashlib.sha256(b"ham\tok\n" + b"junk\n" * 9).hexdigest()
    outputs = tmp_path / "outputs"
    with luigi_config({"pipeline": {"outputs_root": outputs},
                       "DownloadCorpus": {"url": path, "sha256": digest}}):
        task = tasks.DownloadCorpus()
        result = luigi.build([task], local_scheduler=True, log_level="CRITICAL",
                             detailed_summary=True)
        assert result.status == luigi.LuigiStatusCode.FAILED
        assert not task.output().exists()
        with pytest.raises(corpus.CorpusError, match=message):
            task.run()
    leftovers = list((outputs / "corpus").iterdir()) if (outputs / "corpus").exists() else []
    assert leftovers == []


# --------------------------------------------------------------------------- batch input

def _real_score(small_chain):
    return exported_model.ServingSignature(small_chain["export"])


BAD_FILES = {
    "missing.csv": (None, "does not exist"),
    "empty.csv": (b"", "is empty"),
    "no_text.csv": (b"id,message\n1,hello\n", "no 'text' column"),
    "latin1.csv": ("text\ncaf\u00e9 cr\u00e8me\n".encode("latin-1"), "not valid UTF-8"),
    "nul.csv": (b"text\nhello\x00world\n", "NUL bytes"),
    "latin1.txt": ("caf\u00e9\n".encode("latin-1"), "not valid UTF-8"),
    "bad.jsonl": (b'{"text": "ok"}\nnot json\n', "line 2 is not JSON"),
    "no_text.jsonl": (b'{"message": "ok"}\n', "no string 'text' field"),
    "bad.parquet": (b"PAR1garbage", "not a Parquet file"),
    "data.xlsx": (b"PK", "unknown format"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unusable_batch_files_get_a_clear_error(tmp_path, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(batch_files.BatchInputError, match=message) as error:
        list(batch_files.read_messages(path, chunk_rows=10))
    assert str(path) in str(error.value)


ODD_TEXTS = ["", "   ", "emoji 😀🎉 WIN", "中文短信 免费", "مرحبا كيف حالك", "שלום",
             "line\nbreak inside", 'a "quoted" text, with commas', "x" * 1_000_000,
             "NA", "null", "#comment?", "tab\there", "\u200f rtl mark"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_odd_messages_all_come_back_in_order(small_chain, tmp_path, suffix):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(ODD_TEXTS))], "text": ODD_TEXTS})
    path = tmp_path / f"odd{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False, lineterminator="\r\n")  # CRLF, quoted newlines
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    scored = _score_file(small_chain, path, tmp_path)
    assert scored["id"].tolist() == frame["id"].tolist()
    assert scored["text"].tolist() == ODD_TEXTS
    assert scored["spam_probability"].between(0, 1).all()


def test_plain_text_keeps_empty_lines_and_crlf(small_chain, tmp_path):
    path = tmp_path / "odd.txt"
    path.write_bytes("first\r\n\r\n😀 中文\nمرحبا\n".encode())
    scored = _score_file(small_chain, path, tmp_path)
    assert scored["text"].tolist() == ["first", "", "😀 中文", "مرحبا"]


def test_header_only_and_empty_text_files_give_empty_outputs(small_chain, tmp_path):
    for name, content in (("header.csv", b"id,text\n"), ("empty.txt", b"")):
        (tmp_path / name).write_bytes(content)
        scored = _score_file(small_chain, tmp_path / name, tmp_path)
        assert len(scored) == 0 and list(scored.columns) == batch_files.OUTPUT_COLUMNS


def _score_file(small_chain, path: Path, tmp_path: Path) -> pd.DataFrame:
    out = tmp_path / f"{path.name}.scores.parquet"
    rows = local_engine.score_messages(batch_files.read_messages(path, chunk_rows=4),
                                  batch_files.ParquetSink(out), _real_score(small_chain),
                                  model_version=1, batch_size=3)
    frame = pd.read_parquet(out)
    assert rows == len(frame)
    return frame


def test_a_corrupt_live_version_fails_batch_score_naming_the_folder(chain_copy):
    outputs, settings = chain_copy
    (outputs / "serving" / "spam_ham" / "1" / "variables" / "variables.index").write_bytes(b"x")
    with luigi_config(settings):
        task = tasks.BatchScore().requires()  # the engine BatchScore picks
        assert isinstance(task, tasks.ScoreLocally)
        task.set_status_message = task.set_progress_percentage = lambda *a: None
        with pytest.raises(RuntimeError, match=r"cannot load the live model version 1 from "
                                               + str(outputs / "serving" / "spam_ham" / "1")):
            list(task.run() or [])  # run() is a generator (dynamic shard dependencies)
        assert not task.output().exists()


# --------------------------------------------------------------------------- crashes

def _looks_complete_means_complete(outputs: Path) -> list[str]:
    """Every visible target is whole; returns what is wrong."""
    problems = []
    for folder in (outputs / "corpus").glob("[!.]*"):
        if len(corpus.read_corpus_table(folder / "messages.csv")) < 100 or \
                not (folder / "stats.json").stat().st_size:
            problems.append(f"partial corpus {folder}")
    for folder in (outputs / "vocab").glob("[!.]*"):
        if not (folder / "stats.json").exists() or not (folder / "vocab.tsv").stat().st_size:
            problems.append(f"partial vocab {folder}")
    for folder in (outputs / "training").glob("[!.]*"):
        for name in ("model.keras", "metrics.json", "history.json", "report/report.html"):
            if not (folder / name).exists():
                problems.append(f"partial training {folder}: no {name}")
    base = outputs / "serving" / "spam_ham"
    for folder in [*(outputs / "exports").glob("[!.]*"),
                   *(base / str(v) for v in model_base.serving_versions(base))]:
        for name in ("saved_model.pb", "variables/variables.index", export.WARMUP_FILE,
                     export.PROVENANCE_FILE):
            if not (folder / name).exists():
                problems.append(f"partial export {folder}: no {name}")
    if len(model_base.serving_versions(base)) > 1:
        problems.append(f"one export published twice: {model_base.serving_versions(base)}")
    for scores in (outputs / "scores").glob("*/[!.]*.csv"):
        if len(pd.read_csv(scores)) != 6:
            problems.append(f"partial scores {scores}")
    return problems


def _any(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and any(folder.glob(pattern))


def _children(pid: int) -> list:
    """The processes ``pid`` started (PromoteVersion's smoke test is the chain's only one)."""
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


# Where each run is killed, in chain order; each run starts in the folder the last one left.
# A point is a moment a run reaches, seen from outside: a file that appears, or the smoke
# test's process. Kill points are events, not delays, so that they land in every stage
# however loaded the machine is.
KILL_POINTS = [
    ("starting up (imports)", lambda out, run, started: time.time() - started > 0.3),
    ("downloading the corpus", lambda out, *_: _any(out / "corpus", "*")),
    ("building the vocabulary", lambda out, *_: _any(out / "vocab", "*")),
    ("training, before the first epoch", lambda out, *_: _any(out / "training", ".*tmp-*")),
    ("training, in the first epoch",
     lambda out, *_: _any(out / "training", ".*tmp-*/tensorboard")),
    ("training, after the first validation",
     lambda out, *_: _any(out / "training", ".*tmp-*/tensorboard/validation")),
    "seed training",  # the session's trained chain, copied: no run trains it to the end
    ("exporting, first files", lambda out, *_: _any(out / "exports", ".*tmp-*")),
    ("exporting, SavedModel written, warmup requests next",
     lambda out, *_: _any(out / "exports", ".*tmp-*/saved_model.pb")),
    "seed exports",
    ("promoting, smoke test and gate running",
     lambda out, run, started: bool(_children(run.pid))),
    ("promoting, version 1 just published",
     lambda out, *_: (out / "serving" / "spam_ham" / "1").is_dir()),
    ("scoring", lambda out, *_: _any(out / "scores", "*/.*tmp-*")),
    ("scoring, input recorded", lambda out, *_: _any(out / "scores", "*/*.input.json")),
]


def _kill_at(command: list[str], env: dict, outputs: Path, point: str, reached) -> None:
    """Start ``command``, kill -9 its process group once ``reached``; the run must still
    be running then (a kill, not a run that ended by itself)."""
    run = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.time()
    try:
        while True:
            assert run.poll() is None, f"the run ended (exit {run.returncode}) before {point}"
            assert time.time() - started < 300, f"no {point} within 300 s"
            if reached(outputs, run, started):
                break
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL, f"the run ended by itself before {point}"


def test_kill_9_at_many_points_never_leaves_a_partial_target(small_chain, tmp_path):
    outputs = tmp_path / "outputs"
    batch = tmp_path / "batch.csv"
    pd.DataFrame({"text": ["WIN cash", "hi", "", "call 0906123456 now", "ok", "free"]}).to_csv(
        batch, index=False)
    # the session chain's settings, so that its trained model and export can stand in for
    # the stages already killed enough (same fingerprints, same target folders)
    settings = {**small_chain["settings"], "pipeline": {"outputs_root": outputs},
                "core": {"lock_pid_dir": tmp_path / "pids"}}
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    command = [LUIGI, "--module", "pipeline.tasks",
               "BatchScore", "--input", str(batch), "--local-scheduler"]
    kills = 0
    for point in KILL_POINTS:
        if isinstance(point, str):  # "seed <stage>": copy the session's target in
            stage = point.split()[1]
            source = small_chain["training" if stage == "training" else "export"]
            if not (outputs / stage / source.name).exists():
                shutil.copytree(source, outputs / stage / source.name, symlinks=True)
            continue
        name, reached = point
        _kill_at(command, env, outputs, name, reached)
        kills += 1
        assert _looks_complete_means_complete(outputs) == [], f"after a kill -9 {name}"
    assert kills >= 12
    final = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert _looks_complete_means_complete(outputs) == []
    assert model_base.serving_versions(outputs / "serving" / "spam_ham") == [1]
    assert [p.name for p in (outputs / "training").glob("[!.]*")] == [
        small_chain["training"].name]  # the seeded targets were the chain's own
    [scores] = (outputs / "scores").glob("*/[!.]*.csv")
    assert len(pd.read_csv(scores)) == 6
    hidden = [p for p in outputs.rglob(".*tmp-*")]
    live_pids = {p.name.split("tmp-")[1].split("-")[0] for p in hidden}
    assert all(not Path(f"/proc/{pid}").exists() for pid in live_pids)  # only dead leftovers


def test_racing_promote_version_runs_publish_exactly_one_version(chain_copy, tmp_path):
    outputs, settings = chain_copy
    shutil.rmtree(outputs / "serving")
    # no smoke test (tests/test_promotion.py has its own): it would start a fourth to sixth
    # TensorFlow process beside the three racers, and takes no part in the publishing race
    cfg = write_cfg(tmp_path / "run.cfg", {**settings, "PromoteVersion": {"smoke_test": "false"}})
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    command = [LUIGI, "--module", "pipeline.tasks",
               "PromoteVersion", "--local-scheduler", "--no-lock"]
    runs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(3)]
    assert [r.wait(timeout=600) for r in runs] == [0, 0, 0]
    assert model_base.serving_versions(outputs / "serving" / "spam_ham") == [1]
    events = [r["event"] for r in model_base.read_audit(outputs / "serving" / "spam_ham")]
    assert events == ["promoted"]


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_scoring_fails_cleanly_and_keeps_earlier_outputs(chain_copy,
                                                                            tmp_path):
    outputs, settings = chain_copy
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    big = tmp_path / "big.txt"
    big.write_text("WIN a free prize, call now to claim it today\n" * 20000)  # ~0.9 MB
    before = {p: p.read_bytes() for p in outputs.rglob("*") if p.is_file()}
    result = subprocess.run(
        [LUIGI, "--module", "pipeline.tasks",
         "BatchScore", "--input", str(big), "--local-scheduler"],
        cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, capture_output=True,
        text=True, timeout=600, preexec_fn=_limit_file_size(300_000))
    assert result.returncode == 30, result.stderr[-2000:]
    assert "File too large" in result.stderr
    assert list((outputs / "scores").rglob("big-*")) == []
    assert not [p for p in (outputs / "scores").rglob("*") if p.is_file() and "tmp-" in p.name]
    after = {p: p.read_bytes() for p in outputs.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before


def test_a_full_disk_while_exporting_fails_cleanly(chain_copy, tmp_path):
    outputs, settings = chain_copy
    shutil.rmtree(outputs / "exports")
    cfg = write_cfg(tmp_path / "run.cfg", settings)
    result = subprocess.run(
        [LUIGI, "--module", "pipeline.tasks",
         "ExportSavedModel", "--local-scheduler"],
        cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, capture_output=True,
        text=True, timeout=600, preexec_fn=_limit_file_size(20_000))
    assert result.returncode == 30, result.stderr[-2000:]
    assert list((outputs / "exports").iterdir()) == []  # no target, no leftover
    assert model_base.serving_versions(outputs / "serving" / "spam_ham") == [1]
