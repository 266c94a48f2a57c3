"""The documentation keeps up with the code: docs/configuration.md lists every setting of
luigi.cfg and of the pipeline's own tasks and settings classes (and nothing else), the
README stays short, and dated figures stay in bench/RESULTS.md.

Fast: the task modules import no TensorFlow at module level."""
from __future__ import annotations

import configparser
import re

import luigi
from luigi.task_register import Register

import pipeline.settings  # noqa: F401  (registers [pipeline])
import pipeline.tasks  # noqa: F401  (registers every task and [model], [spark])
from conftest import REPO

REFERENCE = REPO / "docs" / "configuration.md"
DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.MULTILINE | re.DOTALL)
README_LIMIT = 12_000
# Dated examples in files another change owns; remove an entry once its dates are gone.
def cfg_settings() -> set[tuple[str, str]]:
    """(section, key) of every key luigi.cfg sets, and of every key it shows commented out
    (`# key = value`: the model's defaults, [smtp] credentials, the corpus URL)."""
    text = (REPO / "luigi.cfg").read_text()
    config = configparser.RawConfigParser()
    config.read_string(text)
    found = {(section, key) for section in config.sections() for key in config[section]}
    for section, body in re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", text,
                                    flags=re.MULTILINE | re.DOTALL):
        found |= {(section, key) for key in re.findall(r"^# (\w+) =", body, flags=re.MULTILINE)}
    return found


def pipeline_classes() -> set[type]:
    """The pipeline's own tasks and luigi.Config classes, as Luigi registered them."""
    classes = {cls for cls in Register._get_reg().values()
               if isinstance(cls, type) and cls.__module__.startswith("pipeline.")}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    classes |= {cls for cls in subclasses(luigi.Config) if cls.__module__.startswith("pipeline.")}
    return classes


def code_settings() -> set[tuple[str, str]]:
    """(task family, parameter name) of every parameter of the pipeline's own classes."""
    return {(cls.get_task_family(), name)
            for cls in pipeline_classes() for name, _ in cls.get_params()}


def documented_settings() -> dict[tuple[str, str], list[str]]:
    """(section, key) -> the row's cells, from docs/configuration.md: a `### [Section]`
    heading (one or more sections) followed by table rows whose first cell is `key`."""
    documented, sections = {}, []
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#"):
            sections = re.findall(r"\[(\w+)\]", line) if line.startswith("### ") else []
            continue
        row = re.match(r"^\| `(\w+)` \|(.*)\|\s*$", line)
        if row and sections:
            cells = [cell.strip() for cell in row.group(2).split(" | ")]
            for section in sections:
                documented[(section, row.group(1))] = cells
    return documented


def test_the_configuration_reference_lists_every_setting_and_only_those():
    real = cfg_settings() | code_settings()
    documented = documented_settings()
    missing = sorted(f"[{s}] {k}" for s, k in real - set(documented))
    unknown = sorted(f"[{s}] {k}" for s, k in set(documented) - real)
    assert not missing, f"in luigi.cfg or the code, not in docs/configuration.md: {missing}"
    assert not unknown, f"in docs/configuration.md, but in neither luigi.cfg nor the code: {unknown}"


def test_every_documented_setting_has_a_default_and_a_meaning():
    for (section, key), cells in documented_settings().items():
        assert len(cells) == 2 and all(cells), f"[{section}] {key}: {cells}"


def test_the_reference_covers_the_pipelines_main_sections():
    """A sanity check of the parsing itself: the sections users edit are all there."""
    sections = {section for section, _ in documented_settings()}
    assert {"pipeline", "DownloadCorpus", "BuildVocab", "TrainRNN", "model", "PromoteVersion",
            "BatchScore", "spark", "ReviewQueue", "MonitorScores", "retcode",
            "scheduler"} <= sections


def test_the_readme_is_short_and_undated():
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= README_LIMIT, f"README.md has {len(readme):,} characters"
    prose = FENCE.sub("", readme)
    assert not DATE.search(prose), f"a date in README.md: {DATE.search(prose).group()}"


def test_the_docs_hold_no_dates_outside_example_commands():
    for page in sorted((REPO / "docs").glob("*.md")):
        prose = FENCE.sub("", page.read_text())
        found = DATE.search(prose)
        assert not found, f"{page.name}: {found.group()} (dated figures: bench/RESULTS.md)"


def test_luigi_cfg_and_the_package_hold_no_dates():
    files = [REPO / "luigi.cfg", *sorted((REPO / "pipeline").rglob("*.py"))]
    dated = [f"{path.relative_to(REPO)}: {DATE.search(path.read_text()).group()}"
             for path in files if DATE.search(path.read_text())]
    assert not dated, dated
