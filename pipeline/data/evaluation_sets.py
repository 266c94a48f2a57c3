"""Evaluation sets: labelled messages from outside the corpus (other collections, other
years, a user's own held-out traffic), scored at the end of training to show how the
model holds up on messages it never saw. They are never trained on and never choose the
threshold. Formats and errors: ``pipeline.data.labelled_files``.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.data.labelled_files import LabelledFileError, LabelledMessages, parse_labelled

SETTING = "[TrainRNN] evaluation_sets"
EvaluationSet = LabelledMessages
EvaluationSetError = LabelledFileError


def paths_from_setting(setting: str) -> list[str]:
    """The comma-separated paths of ``[TrainRNN] evaluation_sets`` (empty: none)."""
    return [path.strip() for path in setting.split(",") if path.strip()]


def read_evaluation_sets(paths: list[str]) -> list[EvaluationSet]:
    """Read and check every file; fail on the first problem, before any training."""
    sets = [read_evaluation_set(path) for path in paths]
    names = [s.name for s in sets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EvaluationSetError(
            f"evaluation sets must have distinct file names; {repeated} appear twice in "
            f"{SETTING}: rename one of the files")
    return sets


def read_evaluation_set(path: str | Path) -> EvaluationSet:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise EvaluationSetError(
            f"evaluation set {path} cannot be read ({error.strerror or error}): fix the path "
            f"in {SETTING} or --TrainRNN-evaluation-sets") from None
    return parse_labelled(data, str(path), SETTING)
