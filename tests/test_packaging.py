"""The package as `pip install .` (not editable) installs it: a wheel built from this
repository, installed into a fresh virtual environment, has its dependencies satisfied
(`pip check`) and each console script runs.

The fresh environment reuses the test environment's packages (a ``.pth`` line) instead of
downloading TensorFlow again; the project's wheel itself is installed without an index.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from conftest import REPO

SCRIPTS = ["spam-ham-cron", "spam-ham-client", "spam-ham-versions", "spam-ham-smoke-test"]


def test_the_wheel_installs_with_its_dependencies_and_console_scripts(tmp_path):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(project["scripts"]) == sorted(SCRIPTS)
    source = tmp_path / "source"  # a copy, so that the build writes nothing into the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "pipeline", source / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, timeout=300)
    [wheel] = wheels.glob("spam_ham_pipeline-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # the test environment's packages, but not its editable install of this repository
    (site / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)

    check = subprocess.run([str(venv / "bin" / "pip"), "check"], capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(site)), f"pipeline imported from {where}, not the wheel"
    for script in SCRIPTS:
        result = subprocess.run([str(venv / "bin" / script), "--help"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{script}: {result.stderr[-2000:]}"
        assert f"usage: {script}" in result.stdout, result.stdout


def test_the_documented_layout_lists_every_module_and_file():
    """docs/architecture.md, "Layout": the tree of pipeline/ names every module and package,
    each where it is, and every other file it names exists."""
    page = (REPO / "docs" / "architecture.md").read_text()
    layout = page.split("## Layout\n", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    listed, folders = set(), []
    for line in layout.splitlines():
        if not line.startswith("  "):
            if line.strip():
                name = line.split()[0]
                assert (REPO / name.rstrip("/")).exists(), f"the layout names {name}"
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        folders[depth - 1:] = [name.rstrip("/")] if name.endswith("/") else []
        path = "/".join(["pipeline", *folders[:depth - 1], name]).rstrip("/")
        listed.add(path)
    actual = {str(path.relative_to(REPO)) for path in (REPO / "pipeline").rglob("*.py")
              if path.name != "__init__.py"}
    actual |= {str(path.parent.relative_to(REPO))
               for path in (REPO / "pipeline").rglob("__init__.py")} - {"pipeline"}
    assert listed == actual, (f"missing from the layout: {sorted(actual - listed)}; "
                              f"listed but absent: {sorted(listed - actual)}")