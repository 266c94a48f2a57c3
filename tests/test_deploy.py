"""The deployment kit in deploy/: the compose file, the systemd units and the crontab
parse, agree with luigi.cfg and with the TF Serving files the pipeline writes, and run
the same luigi commands.

What runs for real: ``systemd-analyze verify`` on the units (where the binary is
installed), the units' and the crontab's shell commands (with a stand-in
``spam-ham-cron`` that records its arguments), luigi's own parser on those arguments,
and the pipeline function that writes TF Serving's deployment files. Not run: Docker
Compose and TF Serving (not installed on the test machines) and systemd as a service
manager.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"
INSTALL_ROOT = "/opt/spam-ham"           # where the units and the crontab assume the repository
VENV_BIN = Path(sys.executable).parent   # this environment's executables (.venv/bin)
ROOT_VARIABLE = re.compile(r"\$\{SPAM_HAM_ROOT:-([^}]*)\}")


# ------------------------------------------------------------------------------ readers

def luigi_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "luigi.cfg")
    return parser


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def interpolate(value: str, root: str | None = None) -> str:
    """Compose's ``${SPAM_HAM_ROOT:-default}``: ``root``, or the default when unset."""
    return ROOT_VARIABLE.sub(lambda match: root or match.group(1), value)


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections, each a list of (key, value) in order (systemd allows a key
    more than once, as ExecStart= in a oneshot service, which configparser does not)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: {line!r}"
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: {line!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def crontab() -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """The crontab's variables and its jobs (5 time fields, command)."""
    variables, jobs = {}, []
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line):
            name, value = line.split("=", 1)
            variables[name] = value
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not 5 time fields and a command: {line!r}"
        jobs.append((fields[:5], fields[5]))
    return variables, jobs


def console_scripts() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


# ------------------------------------------------------------------ docker-compose.yml

def test_compose_file_publishes_every_port_on_localhost_only():
    services = compose()["services"]
    assert set(services) == {"tf-serving", "luigid"}
    for name, service in services.items():
        assert service["ports"], name
        for port in service["ports"]:
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (
                f"{name} publishes {port!r}: neither server authenticates")
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "authenticating proxy" in text


@pytest.mark.parametrize("root", [None, "/srv/elsewhere"])
def test_tf_serving_gets_the_files_and_flags_the_pipeline_writes(tmp_path, root):
    """The real write_deployment_files() writes the three files into a temporary serving
    folder; the compose service's command line is server_command() of the same file names
    under the folder it mounts, with SPAM_HAM_ROOT unset (default) or set."""
    from pipeline.serving import deployment, model_base

    cfg = luigi_cfg()
    outputs_root, model_name = cfg["pipeline"]["outputs_root"], cfg["pipeline"]["model_name"]
    served = tmp_path / outputs_root / "serving"
    files = model_base.write_deployment_files(served, model_name, served / model_name)
    assert all(path.is_file() for path in files.values())

    service = compose()["services"]["tf-serving"]
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+", service["image"]), "pin a tag"
    [volume] = [interpolate(v, root) for v in service["volumes"]]
    host, target, mode = volume.split(":")
    assert (DEPLOY / host).resolve() == REPO / outputs_root / "serving"
    assert mode == "ro"
    container_root = root or INSTALL_ROOT
    assert target == f"{container_root}/{outputs_root}/serving"

    in_container = {flag: Path(target) / path.name for flag, path in files.items()}
    expected = deployment.server_command(in_container)
    actual = service["entrypoint"] + [interpolate(arg, root) for arg in service["command"]]
    assert actual == expected

    # models.config names the base path by its absolute path: the same path on the host
    # (the repository at container_root) and in the container, inside the mount
    written = model_base.write_deployment_files(
        tmp_path / "again", model_name, Path(container_root) / outputs_root / "serving" / model_name)
    config = written["model_config_file"].read_text()
    assert f'base_path: "{target}/{model_name}"' in config

    published = {port.split(":")[-1] for port in service["ports"]}
    flags = dict(arg.lstrip("-").split("=", 1) for arg in expected if "=" in arg)
    assert published == {flags["port"], flags["rest_api_port"]} == {"8500", "8501"}


def test_luigid_service_agrees_with_luigi_cfg():
    cfg = luigi_cfg()
    port = cfg["core"]["scheduler_port"]
    state_path = cfg["scheduler"]["state_path"]
    history = cfg["task_history"]["db_connection"]
    outputs_root = cfg["pipeline"]["outputs_root"]
    assert history.startswith("sqlite:///") and not history.startswith("sqlite:////"), (
        "the task history is a path relative to luigid's working folder")
    for relative in (state_path, history.removeprefix("sqlite:///")):
        assert relative.startswith(f"{outputs_root}/"), f"{relative} is not under outputs/"

    service = compose()["services"]["luigid"]
    workdir = service["working_dir"]
    mounts = {target: (DEPLOY / host).resolve()
              for host, target, *_ in (v.split(":") for v in service["volumes"])}
    assert mounts[f"{workdir}/luigi.cfg"] == REPO / "luigi.cfg"
    assert mounts[f"{workdir}/{outputs_root}"] == REPO / outputs_root
    command = service["command"]
    assert command[0] == "luigid"
    assert command[command.index("--port") + 1] == port
    assert command[command.index("--state-path") + 1] == state_path
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]

    dockerfile = (DEPLOY / "luigid.Dockerfile").read_text()
    assert "-c /tmp/constraints.txt" in dockerfile
    constraints = (REPO / "constraints.txt").read_text()
    for package in ("luigi", "sqlalchemy", "prometheus-client"):
        assert package in dockerfile and re.search(rf"^{package}==", constraints, re.M), package

    unit = read_unit(UNITS / "spam-ham-luigid.service")
    assert unit_values(unit, "Service", "WorkingDirectory") == [INSTALL_ROOT]  # its luigi.cfg
    [exec_start] = unit_values(unit, "Service", "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0] == f"{INSTALL_ROOT}/.venv/bin/luigid"
    assert argv[argv.index("--port") + 1] == port
    assert argv[argv.index("--address") + 1] == cfg["core"]["scheduler_host"] == "127.0.0.1"
    assert argv[argv.index("--state-path") + 1] == state_path


# ------------------------------------------------------------------------ systemd units

def test_units_assume_the_install_root_the_venv_and_a_dedicated_user():
    names = sorted(path.name for path in UNITS.iterdir())
    assert {"spam-ham-luigid.service", "spam-ham-nightly.service",
            "spam-ham-nightly.timer"} <= set(names)
    for path in UNITS.iterdir():
        header = " ".join(line.lstrip("#").strip() for line in path.read_text().splitlines()
                          if line.startswith("#"))
        assert f"Assumes the repository at {INSTALL_ROOT}" in header, path.name
        assert f"{INSTALL_ROOT}/.venv" in header and "dedicated user" in header, path.name
        unit = read_unit(path)
        if path.suffix == ".service":
            assert unit_values(unit, "Service", "WorkingDirectory") == [INSTALL_ROOT]
            assert unit_values(unit, "Service", "User") == ["spam-ham"]
        else:
            service = path.with_suffix(".service")
            assert service.exists(), f"{path.name} starts {service.name}, which is absent"
            assert unit_values(unit, "Timer", "Persistent") == ["true"]
            assert len(unit_values(unit, "Timer", "OnCalendar")) == 1
    nightly = read_unit(UNITS / "spam-ham-nightly.service")
    assert unit_values(nightly, "Service", "Type") == ["oneshot"]
    assert unit_values(read_unit(UNITS / "spam-ham-nightly.timer"), "Timer", "OnCalendar") \
        == ["*-*-* 02:00:00"]


def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path):
    """``systemd-analyze verify`` checks each unit's sections, keys and values (an unknown
    key, a bad calendar spec, a relative command) and that each command is an executable.
    The units name /opt/spam-ham/.venv/bin/..., which does not exist here, so they are
    verified as copies with /opt/spam-ham/.venv/bin replaced by this environment's bin
    folder and /opt/spam-ham by the repository; nothing else changes. Every message that
    names one of the units fails the test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package; .ci/run "
                    "installs it)")
    names = []
    for path in UNITS.iterdir():
        text = path.read_text().replace(f"{INSTALL_ROOT}/.venv/bin/", f"{VENV_BIN}/")
        (tmp_path / path.name).write_text(text.replace(INSTALL_ROOT, str(REPO)))
        names.append(path.name)
    assert (VENV_BIN / "luigid").exists()
    result = subprocess.run([analyze, "verify", *sorted(names)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    messages = [line for line in (result.stdout + result.stderr).splitlines()
                if any(name in line for name in names) or "/opt/spam-ham" in line]
    assert result.returncode == 0 and not messages, result.stdout + result.stderr


# ------------------------------------------------------------- the commands they run

TIME_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _valid_time_field(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return False
        numbers = [int(n) for n in match.groups()[1:3] if n is not None]
        if any(not low <= n <= high for n in numbers) or match.group(4) == "0":
            return False
    return True


def test_crontab_lines_are_five_time_fields_and_an_installed_command():
    variables, jobs = crontab()
    assert variables["REPO"] == INSTALL_ROOT and variables["SHELL"] == "/bin/bash"
    assert jobs
    scripts = console_scripts()
    for fields, command in jobs:
        for field, (low, high) in zip(fields, TIME_FIELDS):
            assert _valid_time_field(field, low, high), f"time field {field!r}: {command}"
        assert "%" not in command.replace("\\%", ""), (
            f"cron turns an unescaped % into a new line: {command}")
        match = re.fullmatch(r"cd \$REPO && \.venv/bin/(\S+) .*", command)
        assert match, f"expected 'cd $REPO && .venv/bin/<command> ...': {command}"
        name = match.group(1)
        assert name in scripts or (VENV_BIN / name).exists(), name


def _fake_install(tmp_path: Path) -> tuple[Path, Path]:
    """A folder standing in for /opt/spam-ham whose .venv/bin/spam-ham-cron records its
    arguments (one JSON list a line), with two labelled files in feedback/."""
    root = tmp_path / "install"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "feedback").mkdir()
    for name in ("2026-11-01.csv", "2026-11-08.csv"):
        (root / "feedback" / name).write_text("label,text\nham,hi\n")
    log = tmp_path / "arguments.jsonl"
    stub = root / ".venv" / "bin" / "spam-ham-cron"
    stub.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    stub.chmod(0o755)
    return root, log


def _recorded(log: Path) -> list[tuple[str, ...]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]


def _systemd_command(value: str) -> list[str]:
    """An ExecStart= value as the argv systemd runs: %% and $$ are a literal % and $
    (a lone % is a specifier, a lone $ a variable: none is used here), then words split
    with shell-like quoting, which for these lines is what shlex does."""
    assert "%" not in value.replace("%%", ""), f"a % specifier: {value}"
    assert "$" not in value.replace("$$", ""), f"a $ variable: {value}"
    return shlex.split(value.replace("%%", "%").replace("$$", "$"))


def test_systemd_units_and_crontab_run_the_same_luigi_commands(tmp_path):
    """Each unit's and each crontab line's command runs in a stand-in install folder; the
    arguments given to spam-ham-cron are the same set, and luigi's parser accepts each
    (the task and every --Task-parameter exist)."""
    from luigi.cmdline_parser import CmdlineParser

    root, log = _fake_install(tmp_path)
    environment = {**os.environ, "TZ": "UTC"}
    for name in ("spam-ham-nightly.service", "spam-ham-retrain.service"):
        for value in unit_values(read_unit(UNITS / name), "Service", "ExecStart"):
            subprocess.run(_systemd_command(value), cwd=root, env=environment, check=True,
                           timeout=60)
    from_units = _recorded(log)
    log.unlink()

    variables, jobs = crontab()
    for _, command in jobs:
        subprocess.run([variables["SHELL"], "-c", command.replace("\\%", "%")], cwd=tmp_path,
                       env={**environment, **variables, "REPO": str(root)}, check=True,
                       timeout=60)
    from_crontab = _recorded(log)

    assert len(from_units) == len(from_crontab) == 4
    assert sorted(from_units) == sorted(from_crontab)
    dates = {arguments[arguments.index("--date") + 1]
             for arguments in from_units if "--date" in arguments}
    assert len(dates) == 1 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", dates.pop())
    [retrain] = [arguments for arguments in from_units if "PromoteVersion" in arguments]
    sources = retrain[retrain.index("--DownloadCorpus-extra-sources") + 1]
    assert sources == "feedback/2026-11-01.csv,feedback/2026-11-08.csv"
    assert re.fullmatch(r"\d{6}", retrain[retrain.index("--TrainRNN-seed") + 1])

    for arguments in from_units:
        with CmdlineParser.global_instance(list(arguments)) as parser:
            task = parser.get_task_obj()
        assert task.task_family == arguments[2]
