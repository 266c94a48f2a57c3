"""The console scripts' help texts, exit codes and ``spam-ham-versions``' list, show and
--config, without TensorFlow: versions are published with the real model_base functions
from small stand-in exports, and the client talks to a tiny HTTP server that answers
errors as TF Serving does."""
from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import luigi.configuration
import pytest
from luigi.task_register import Register

from conftest import REPO, JsonReplies, write_cfg
from pipeline.cli import client, cron, exit_codes_epilog, smoke_test, versions
from pipeline.serving import model_base

BIN = Path(sys.executable).parent
SCRIPTS = {"spam-ham-client": (client, {0, 1, 2, 3, 4}),
           "spam-ham-versions": (versions, {0, 1, 2, 3}),
           "spam-ham-smoke-test": (smoke_test, {0, 1, 2}),
           "spam-ham-cron": (cron, {0, 1, 2, 10, 20, 25, 30, 35, 40})}


def _parsers(parser: argparse.ArgumentParser):
    """``parser`` and each of its subcommands' parsers."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_option_positional_and_command_has_a_help_text(script):
    module, _ = SCRIPTS[script]
    for parser in _parsers(module.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{parser.prog}: {name} has no help"
            for command in getattr(action, "_choices_actions", []):  # subcommands
                assert command.help, f"{parser.prog}: command {command.dest} has no help"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_ends_with_every_exit_code_and_its_meaning(script):
    module, codes = SCRIPTS[script]
    assert set(module.EXIT_CODES) == codes
    for parser in _parsers(module.build_parser()):
        text = parser.format_help()
        assert "\nexit codes:\n" in text, parser.prog
        section = text.split("\nexit codes:\n", 1)[1]
        listed = {int(code) for code in re.findall(r"^  (\d+) ", section, re.MULTILINE)}
        assert listed == codes, f"{parser.prog} --help lists exit codes {sorted(listed)}"
        assert text.rstrip().endswith(exit_codes_epilog(module.EXIT_CODES)), parser.prog


def test_the_installed_scripts_print_that_help():
    result = subprocess.run([str(BIN / "spam-ham-versions"), "show", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: spam-ham-versions show" in result.stdout
    assert "exit codes:\n  0" in result.stdout


# --- spam-ham-client --------------------------------------------------------------------

class TFServingErrors(JsonReplies):
    """Answers as tensorflow_model_server does when something is wrong: an unknown model
    or version is HTTP 404 with {"error": ...}, a failing one HTTP 500 with {"error": ...}."""

    def do_GET(self):
        if self.path == "/v1/models/spam_ham":
            self._reply(500, {"error": "Could not load the model: out of memory"})
        else:
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(404, {"error": "Servable not found for request: Latest(nope)"})


@contextlib.contextmanager
def serving_errors():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TFServingErrors)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_client_exits_3_when_nothing_listens(capsys):
    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert client.main(["--rest", f"http://127.0.0.1:{port}", "--timeout", "5", "hi"]) == 3
    error = json.loads(capsys.readouterr().err)
    assert error["kind"] == "connection" and "cannot connect" in error["error"]


def test_client_exits_4_when_the_server_answers_with_an_error(capsys):
    with serving_errors() as url:
        assert client.main(["--rest", url, "--model", "nope", "hello"]) == 4
        error = json.loads(capsys.readouterr().err)
        assert error["kind"] == "server" and "HTTP 404" in error["error"]
        assert "Servable not found" in error["error"]
        assert client.main(["--rest", url, "--api", "status"]) == 4
        error = json.loads(capsys.readouterr().err)
        assert "HTTP 500" in error["error"] and "out of memory" in error["error"]


@pytest.mark.parametrize("arguments", [
    ["--api", "predict"],                                  # no message
    ["--grpc", "127.0.0.1:1", "--api", "status"],          # not offered over gRPC
    ["--rest", "localhost:8501", "hi"],                    # no http:// (requests would fail)
    ["--rest", "http://localhost:port", "hi"],
    ["--version", "x", "hi"],
])
def test_client_usage_errors_exit_2(arguments, capsys):
    with pytest.raises(SystemExit) as stopped:
        client.main(arguments)
    assert stopped.value.code == 2
    assert "spam-ham-client: error:" in capsys.readouterr().err


# --- spam-ham-versions ------------------------------------------------------------------

CARD = "# Model card: spam_ham\n\nTest MCC 0.95 (95% interval 0.93 to 0.97).\n"


def _export(folder: Path, export_id: str, day: int, card: bool) -> Path:
    """A stand-in for ExportSavedModel's output: its provenance, and a model card when
    ``card`` (exports made before model cards existed have none)."""
    (folder / "assets.extra").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    provenance = {"export_id": export_id, "training_run": f"run{day}",
                  "exported_at": f"2026-12-0{day}T02:00:00+00:00", "threshold": 0.625,
                  "metrics": {"threshold": 0.625, "test": {"messages": 1115, "mcc": 0.95,
                                                           "accuracy": 0.9894}}}
    (folder / model_base.PROVENANCE_FILE).write_text(json.dumps(provenance))
    if card:
        (folder / model_base.MODEL_CARD_FILE).write_text(CARD)
        (folder / model_base.MODEL_CARD_JSON_FILE).write_text(json.dumps(
            {"model_details": {"name": "spam_ham", "export_id": export_id}}))
    return folder


@pytest.fixture
def fresh_luigi_config(monkeypatch):
    """Luigi reads its usual config files again, as a console script's process does (not
    the repository's luigi.cfg that conftest adds), and --config's addition is undone
    afterwards."""
    parser_class = luigi.configuration.LuigiConfigParser
    monkeypatch.setattr(parser_class, "_instance", None)
    monkeypatch.setattr(parser_class, "_config_paths", [
        path for path in parser_class._config_paths if path != str(REPO / "luigi.cfg")])
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    Register.clear_instance_cache()
    yield
    Register.clear_instance_cache()


@pytest.fixture
def published(tmp_path, fresh_luigi_config):
    """Versions 1 (exported before model cards), 2 (with a card) and 3 (a rollback to 2),
    published by model_base; returns the luigi.cfg naming their outputs_root, and the base."""
    outputs = tmp_path / "outputs"
    base = outputs / "serving" / "spam_ham"
    for day, (export_id, card) in enumerate([("0123456789abcdef", False),
                                             ("fedcba9876543210", True)], start=1):
        staged = _export(outputs / "exports" / export_id, export_id, day, card)
        assert model_base.promote_export(staged, base, export_id) == (day, True)
    assert model_base.rollback(base, 2, "test") == 3
    cfg = write_cfg(tmp_path / "luigi.cfg",
                    {"pipeline": {"outputs_root": outputs, "model_name": "spam_ham"}})
    return cfg, base


def _versions(capsys, *arguments) -> tuple[int, str, str]:
    code = versions.main([str(a) for a in arguments])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_a_table_with_the_live_version_and_where_each_came_from(published, capsys):
    cfg, base = published
    code, out, _ = _versions(capsys, "--config", cfg, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"model base path: {base}"
    assert lines[1].split() == ["version", "live", "exported_at", "training_run", "export_id",
                                "copy_of_version"]
    assert lines[2].split() == ["1", "2026-12-01T02:00:00+00:00", "run1", "01234567", "-"]
    assert lines[3].split() == ["2", "2026-12-02T02:00:00+00:00", "run2", "fedcba98", "-"]
    assert lines[4].split() == ["3", "*", "2026-12-02T02:00:00+00:00", "run2", "fedcba98", "2"]
    assert len(lines) == 5


def test_list_json_keeps_its_keys(published, capsys):
    cfg, base = published
    code, out, _ = _versions(capsys, "list", "--json", "--config", cfg)  # --config after too
    assert code == 0
    assert json.loads(out) == {"model_base_path": str(base), "versions": [
        {"version": 1, "live": False, "export_id": "0123456789abcdef", "training_run": "run1",
         "exported_at": "2026-12-01T02:00:00+00:00", "copy_of_version": None},
        {"version": 2, "live": False, "export_id": "fedcba9876543210", "training_run": "run2",
         "exported_at": "2026-12-02T02:00:00+00:00", "copy_of_version": None},
        {"version": 3, "live": True, "export_id": "fedcba9876543210", "training_run": "run2",
         "exported_at": "2026-12-02T02:00:00+00:00", "copy_of_version": 2}]}


def test_list_of_an_empty_base_path(tmp_path, fresh_luigi_config, capsys):
    cfg = write_cfg(tmp_path / "luigi.cfg", {"pipeline": {"outputs_root": tmp_path / "none"}})
    code, out, _ = _versions(capsys, "--config", cfg, "list")
    assert code == 0 and "no versions yet" in out
    code, out, _ = _versions(capsys, "--config", cfg, "list", "--json")
    assert code == 0 and json.loads(out)["versions"] == []


def test_show_prints_the_model_card_of_a_version_or_the_live_one(published, capsys):
    cfg, _ = published
    assert _versions(capsys, "--config", cfg, "show", "2") == (0, CARD, "")
    assert _versions(capsys, "--config", cfg, "show", "live") == (0, CARD, "")  # 3, a copy of 2
    code, out, _ = _versions(capsys, "--config", cfg, "show", "2", "--json")
    assert code == 0
    assert json.loads(out)["model_details"]["export_id"] == "fedcba9876543210"


def test_show_of_a_version_from_before_model_cards_summarises_its_provenance(published, capsys):
    cfg, _ = published
    code, out, _ = _versions(capsys, "--config", cfg, "show", "1")
    assert code == 0
    first, *rest = out.splitlines()
    assert first.startswith("version 1 has no model card")
    assert "exported before model cards existed" in first
    fields = {line.split("  ")[1].strip(): line.split()[-1] for line in rest}
    assert fields == {"exported_at": "2026-12-01T02:00:00+00:00", "training_run": "run1",
                      "export_id": "0123456789abcdef", "threshold": "0.6250",
                      "test messages": "1115", "test mcc": "0.9500",
                      "test accuracy": "0.9894"}
    code, out, _ = _versions(capsys, "--config", cfg, "show", "1", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["model_card"] is None
    assert "exported before model cards existed" in summary["note"]
    assert summary["provenance"]["threshold"] == 0.625
    assert summary["provenance"]["metrics"]["test"]["mcc"] == 0.95


def test_show_of_a_missing_version_names_those_there_and_exits_1(published, capsys):
    cfg, base = published
    code, out, err = _versions(capsys, "--config", cfg, "show", "7")
    assert (code, out) == (1, "")
    assert f"version 7 is not under {base} (versions there: [1, 2, 3])" in err
    for version in ("0", "x", "-1"):
        with pytest.raises(SystemExit) as stopped:
            versions.main(["--config", str(cfg), "show", version])
        assert stopped.value.code == 2
        assert "neither a version number nor 'live'" in capsys.readouterr().err


def test_show_live_with_nothing_published_and_a_version_without_provenance_exit_1(
        tmp_path, fresh_luigi_config, capsys):
    outputs = tmp_path / "outputs"
    cfg = write_cfg(tmp_path / "luigi.cfg", {"pipeline": {"outputs_root": outputs}})
    code, _, err = _versions(capsys, "--config", cfg, "show", "live")
    assert code == 1 and "no model version under" in err
    (tmp_path / "bare").mkdir()
    with model_base.promotion_lock(outputs / "serving" / "spam_ham"):
        model_base.publish_version(tmp_path / "bare", outputs / "serving" / "spam_ham")
    code, _, err = _versions(capsys, "--config", cfg, "show", "1")
    assert code == 1 and "neither assets.extra/model_card.md nor" in err


def test_rollback_and_model_config_errors_exit_1(published, capsys):
    cfg, base = published
    code, out, _ = _versions(capsys, "--config", cfg, "rollback", "1", "--reason", "test")
    assert code == 0 and json.loads(out)["new_version"] == 4
    assert model_base.version_provenance(base, 4)["copy_of_version"] == 1
    code, _, err = _versions(capsys, "--config", cfg, "rollback", "9")
    assert code == 1 and "versions there: [1, 2, 3, 4]" in err
    code, _, err = _versions(capsys, "--config", cfg, "model-config", "--stable", "9",
                             "--folder", base.parent / "labels")
    assert code == 1 and "[9] are not under" in err


def test_config_is_the_file_read_over_luigi_cfg_in_the_working_folder(
        published, tmp_path, monkeypatch, capsys):
    """A luigi.cfg in the working folder (which luigi reads) names other outputs; --config
    wins, in this process and from the installed script."""
    cfg, base = published
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_cfg(elsewhere / "luigi.cfg", {"pipeline": {"outputs_root": elsewhere / "outputs"}})
    monkeypatch.chdir(elsewhere)
    code, out, _ = _versions(capsys, "list", "--json")
    assert code == 0 and json.loads(out) == {
        "model_base_path": str(elsewhere / "outputs" / "serving" / "spam_ham"), "versions": []}
    monkeypatch.setattr(luigi.configuration.LuigiConfigParser, "_instance", None)
    code, out, _ = _versions(capsys, "--config", cfg, "list", "--json")
    assert code == 0 and json.loads(out)["model_base_path"] == str(base)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no LUIGI_CONFIG_PATH
    result = subprocess.run([str(BIN / "spam-ham-versions"), "--config", str(cfg), "list"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"model base path: {base}"
    assert len(result.stdout.splitlines()) == 5


@pytest.mark.parametrize("name, content, message", [
    ("missing.cfg", None, "no such file"),
    ("settings.toml", "[pipeline]\noutputs_root = 'x'\n", "'cfg' parser"),
    ("broken.cfg", "outputs_root = x\n", "not a luigi config file"),
])
def test_a_config_that_cannot_be_read_is_a_usage_error(name, content, message, tmp_path,
                                                       fresh_luigi_config, capsys):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        versions.main(["--config", str(path), "list"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"spam-ham-versions: error: --config {path}: " in err and message in err


# --- spam-ham-cron ------------------------------------------------------------------------

def test_cron_reports_a_command_line_luigi_cannot_read_in_one_line_and_exits_2(tmp_path):
    log = tmp_path / "logs" / "stderr.log"
    result = subprocess.run(
        [str(BIN / "spam-ham-cron"), "--stderr-log", str(log), "--module", "pipeline.tasks",
         "NoSuchTask", "--local-scheduler"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("spam-ham-cron: exit 2 (usage error): TaskClassNotFoundException: "
                           "No task NoSuchTask")
    assert result.stdout == ""
