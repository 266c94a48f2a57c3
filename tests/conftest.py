"""Shared fixtures: a small corpus built here, a temporary outputs folder, config overrides."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import random
import shutil
import sys
import threading
import zipfile
from pathlib import Path

import luigi
import luigi.configuration
import pytest
from luigi.task_register import Register

REPO = Path(__file__).resolve().parents[1]
LUIGI = str(Path(sys.executable).with_name("luigi"))  # the venv's `luigi` command
SHARED_CORPUS = REPO.parent / "shared" / "data" / "sms-spam-collection"
SHARED_ZIP = SHARED_CORPUS / "smsspamcollection.zip"

luigi.configuration.add_config_path(str(REPO / "luigi.cfg"))

_HAM = ["ok see you at {t} then", "are you coming home for dinner {d}", "sorry i'll call later",
        "haha that was so funny {d}", "can you pick up some milk on the way",
        "i am running late, be there by {t}", "did you watch the match last night",
        "love you, sleep well", "where are you? we are waiting at the cafe",
        "meeting moved to {d} at {t}", "thanks for the lift {d}", "what time is class {d}"]
_SPAM = ["WINNER!! you have won a £{n} prize. call 0906{p} now to claim",
         "FREE entry to win a {d} holiday! text WIN to 8{p}",
         "URGENT your mobile number has been awarded £{n}. call 0871{p}",
         "claim your free ringtone now, reply YES to 6{p}. T&C apply",
         "Congratulations! you are selected for a cash award of £{n}, call 09{p}"]


def build_small_corpus(messages: int = 240, seed: int = 7) -> bytes:
    """A small, deterministic SMS corpus in the real file's format (with a few repeats)."""
    rng = random.Random(seed)
    days = ["today", "tomorrow", "monday", "friday", "tonight"]
    lines = []
    for i in range(messages):
        spam = i % 5 == 0
        template = rng.choice(_SPAM if spam else _HAM)
        message = template.format(t=f"{rng.randint(1, 12)}pm", d=rng.choice(days),
                                  n=rng.choice([100, 500, 1000, 2000]),
                                  p=rng.randint(10000, 99999))
        lines.append(f"{'spam' if spam else 'ham'}\t{message} {i}")
    lines += [lines[1], lines[2], lines[5]]  # repeated texts, dropped by DownloadCorpus
    return ("\n".join(lines) + "\n").encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def small_corpus() -> bytes:
    return build_small_corpus()


@pytest.fixture(scope="session")
def small_corpus_zip(tmp_path_factory, small_corpus) -> tuple[Path, str]:
    """Path of a zip holding the small corpus, and the member's sha256."""
    path = tmp_path_factory.mktemp("corpus") / "smsspamcollection.zip"
    path.write_bytes(zip_bytes({"SMSSpamCollection": small_corpus, "readme": b"test corpus"}))
    return path, hashlib.sha256(small_corpus).hexdigest()


@pytest.fixture
def shared_zip() -> Path:
    if not SHARED_ZIP.is_file():
        pytest.skip(f"the real corpus is not at {SHARED_ZIP} (../shared is absent)")
    return SHARED_ZIP


@contextlib.contextmanager
def luigi_config(overrides: dict[str, dict[str, object]]):
    """Run with luigi.cfg plus ``overrides`` (section -> option -> value), then restore."""
    parser_class = luigi.configuration.LuigiConfigParser
    original = parser_class.instance()
    replacement = parser_class()
    for section in original.sections():
        replacement.add_section(section)
        for option, value in original.items(section, raw=True):
            replacement.set(section, option, value)
    for section, options in overrides.items():
        if not replacement.has_section(section):
            replacement.add_section(section)
        for option, value in options.items():
            replacement.set(section, option, str(value))
    parser_class._instance = replacement
    Register.clear_instance_cache()
    try:
        yield
    finally:
        parser_class._instance = original
        Register.clear_instance_cache()


def write_cfg(path: Path, settings: dict) -> Path:
    """Write ``settings`` (section -> option -> value) as a luigi.cfg file for a subprocess."""
    lines = []
    for section, options in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def small_pipeline_settings(outputs: Path, corpus_zip: Path, sha256: str) -> dict:
    """A fast configuration: the small corpus and a tiny recurrent model. Luigi's lock of
    identical command lines is kept beside the outputs, so that tests running in parallel
    (pytest-xdist) never see each other's runs as "already running"."""
    return {
        "core": {"lock_pid_dir": outputs.parent / "pids"},
        "pipeline": {"outputs_root": outputs},
        "DownloadCorpus": {"url": corpus_zip, "sha256": sha256, "backoff_seconds": 0.01},
        "BuildVocab": {"min_count": 1},
        "TrainRNN": {"embedding_dim": 8, "rnn_units": 8, "epochs": 6, "batch_size": 16,
                     "learning_rate": 0.01, "max_length": 20},
    }


@pytest.fixture
def small_pipeline(tmp_path, small_corpus_zip):
    """Configure the pipeline for the small corpus under a temporary outputs folder."""
    corpus_zip, sha256 = small_corpus_zip
    outputs = tmp_path / "outputs"
    with luigi_config(small_pipeline_settings(outputs, corpus_zip, sha256)):
        yield outputs


class JsonReplies(http.server.BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON, as tensorflow_model_server's REST API
    does (stand-ins for it in tests/test_client.py and tests/test_cli.py)."""

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1 on a free port; yield the base URL."""
    handler = lambda *a, **k: _QuietHandler(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SMALL_EVALUATION_SET = ("label\ttext\nspam\tWIN a £500 prize, text CLAIM to 80808\n"
                        "ham\tare we still on for lunch tomorrow?\n"
                        "spam\tURGENT! your account is locked, verify at bit.ly/x1y2\n"
                        "ham\tok i'll bring the charger\n")


@pytest.fixture(scope="session")
def small_chain(tmp_path_factory, small_corpus_zip):
    """The small pipeline run once up to PromoteVersion, with one evaluation set; yields
    its settings and outputs."""
    corpus_zip, sha256 = small_corpus_zip
    root = tmp_path_factory.mktemp("chain")
    outputs = root / "outputs"
    (root / "held_out.tsv").write_text(SMALL_EVALUATION_SET, encoding="utf-8")
    settings = small_pipeline_settings(outputs, corpus_zip, sha256)
    settings["TrainRNN"] = {**settings["TrainRNN"], "evaluation_sets": root / "held_out.tsv"}
    with luigi_config(settings):
        from pipeline import tasks
        assert luigi.build([tasks.PromoteVersion()], local_scheduler=True, log_level="WARNING")
        export_dir = tasks.ExportSavedModel().output_folder()
        training_dir = tasks.TrainRNN().output_folder()
        corpus_dir = tasks.DownloadCorpus().output_folder()
        vocab_dir = tasks.BuildVocab().output_folder()
    return {"settings": settings, "outputs": outputs, "export": export_dir,
            "training": training_dir, "corpus": corpus_dir, "vocab": vocab_dir,
            "serving": outputs / "serving" / "spam_ham"}


@pytest.fixture
def chain_copy(small_chain, tmp_path):
    """A private copy of the small chain's outputs (version 1 live) and its settings."""
    outputs = tmp_path / "outputs"
    shutil.copytree(small_chain["outputs"], outputs, symlinks=True)
    return outputs, {**small_chain["settings"], "pipeline": {"outputs_root": outputs}}


# The fast tier (`pytest -m "not slow"`, docs/development.md "Tiers"): a test is slow when it
# trains a model (a fixture that runs the small chain, or a module that trains tiny models
# itself), reads the real corpus, or starts luigid, Spark, a browser or the luigi command.
SLOW_FIXTURES = {"small_chain", "chain_copy", "small_pipeline", "shared_zip", "spark"}
SLOW_MODULES = {"test_end_to_end", "test_operations", "test_reliability", "test_spark_engine",
                "test_feedback_loop", "test_model", "test_fused_gru", "test_teacher",
                "test_client", "test_packaging"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__ if item.module else ""
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
