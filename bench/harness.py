"""Shared pieces of the benchmarks: inputs sampled from the real corpus, measured runs of
the real `luigi` command, and Markdown tables."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OUTPUTS = RESULTS / "outputs"
SHARED_ZIP = REPO.parent / "shared" / "data" / "sms-spam-collection" / "smsspamcollection.zip"
LUIGI = str(Path(sys.executable).with_name("luigi"))


def corpus_url() -> str:
    return os.environ.get("SPAM_CORPUS_URL") or str(SHARED_ZIP)


def luigi_command(*args: str, outputs: Path = OUTPUTS) -> list[str]:
    return [LUIGI, "--module", "pipeline.tasks", *args, "--local-scheduler",
            "--pipeline-outputs-root", str(outputs)]


def measured_run(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak RSS in MB) of that process tree's largest
    process, from the kernel's accounting (wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, **(env or {}),
                                                            "SPAM_CORPUS_URL": corpus_url()})
    stderr_lines = []
    for line in process.stderr:
        stderr_lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited {process.returncode}:\n"
                           + b"".join(stderr_lines[-40:]).decode(errors="replace"))
    return seconds, usage.ru_maxrss / 1024


def score_file(path: Path, date: str, *options: str, outputs: Path = OUTPUTS
               ) -> tuple[float, float]:
    """One real BatchScore run of ``path`` (its partition is cleared first, so the run
    scores instead of finding its target complete); returns (seconds, peak RSS MB)."""
    shutil.rmtree(outputs / "scores" / date, ignore_errors=True)
    return measured_run(luigi_command("BatchScore", "--input", str(path), "--date", date,
                                      *options, outputs=outputs))


def corpus_texts() -> list[str]:
    from pipeline.data import corpus

    member = corpus.read_corpus_member(Path(SHARED_ZIP).read_bytes())
    table, _ = corpus.build_corpus_table(member, seed=0, max_malformed_share=0.01)
    return table["text"].tolist()


def sampled_input(rows: int, suffix: str = ".csv", seed: int = 0) -> Path:
    """A batch file of ``rows`` real corpus messages sampled with replacement (cached)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"messages-{rows}{suffix}"
    if not path.exists():
        texts = np.random.default_rng(seed).choice(np.array(corpus_texts(), dtype=object), rows)
        frame = pd.DataFrame({"id": np.arange(rows), "text": texts})
        temporary = path.with_name(path.name + ".tmp")
        if suffix == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        temporary.rename(path)
    return path


def ensure_model(outputs: Path = OUTPUTS) -> None:
    """Train and publish the model luigi.cfg describes (a no-op once it is live). Forced past
    the gate: the benchmarks measure the configured model even if an older one scored
    better in this benchmark folder."""
    measured_run(luigi_command("PromoteVersion", "--PromoteVersion-force", outputs=outputs))


def use_repository_config() -> None:
    """Read the repository's luigi.cfg in this process, as the benchmarked runs do."""
    import luigi.configuration

    luigi.configuration.add_config_path(str(REPO / "luigi.cfg"))


def median(values) -> float:
    return statistics.median(values)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, text: str) -> None:
    """Print a result table and keep it as bench/results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    print(text, flush=True)


RESULTS_FILE = REPO / "bench" / "RESULTS.md"
RESULTS_PREAMBLE = """# Benchmark results

Written by the scripts in `bench/` (each replaces its own section): the one place for
dated figures. Each section says when, on which commit and on which machine it was
measured; these machines are shared and noisy, so compare figures of one section, not
across sections.
"""


def record_result(name: str, text: str) -> None:
    """Replace the section ``name`` of bench/RESULTS.md with ``text``, headed by the date,
    the commit (``+`` when the tree had uncommitted changes) and the machine."""
    import datetime as dt
    import platform

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    heading = f"## {name}"
    section = "\n".join([
        heading, "",
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, commit {commit}"
        f"{'+' if dirty else ''}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, load {load:.2f} at the end", "",
        f"`.venv/bin/python bench/{name}.py`", "", text.strip(), ""])
    existing = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else RESULTS_PREAMBLE
    sections = existing.split("\n## ")
    kept = [sections[0].rstrip() + "\n"] + ["## " + s.rstrip() + "\n" for s in sections[1:]
                                            if not s.startswith(name + "\n")]
    RESULTS_FILE.write_text("\n".join(kept + [section]))
