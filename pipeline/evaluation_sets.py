"""Evaluation sets: labelled messages from outside the corpus (other collections, other
years, a user's own held-out traffic), scored at the end of training to show how the
model holds up on messages it never saw. They are never trained on and never choose the
threshold.

Accepted files (UTF-8): ``label<TAB>text`` lines with no header, like
``SMSSpamCollection``; or CSV / TSV with a header naming ``label`` and ``text`` columns.
Labels are ``ham`` or ``spam`` (any case).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS = ("ham", "spam")


class EvaluationSetError(ValueError):
    """An evaluation set cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EvaluationSet:
    name: str              # the file name without its extension
    path: str
    sha256: str
    texts: list[str]
    labels: np.ndarray     # True for spam

    def describe(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "messages": len(self.texts),
                "spam": int(self.labels.sum())}


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
            "[TrainRNN] evaluation_sets: rename one of the files")
    return sets


def read_evaluation_set(path: str | Path) -> EvaluationSet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EvaluationSetError(
            f"evaluation set {path} cannot be read ({error.strerror or error}): fix the path "
            "in [TrainRNN] evaluation_sets or --TrainRNN-evaluation-sets") from None
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise EvaluationSetError(
            f"evaluation set {path} is not valid UTF-8 (line {line}, byte {error.start}): "
            "re-encode it as UTF-8") from None
    rows = _rows(path, content)
    if not rows:
        raise EvaluationSetError(f"evaluation set {path} holds no messages")
    texts, labels = [], []
    for line, label, message in rows:
        if label.strip().lower() not in LABELS:
            raise EvaluationSetError(
                f"evaluation set {path}, line {line}: label {label!r} is not 'ham' or 'spam'")
        texts.append(message)
        labels.append(label.strip().lower() == "spam")
    return EvaluationSet(path.stem, str(path), hashlib.sha256(data).hexdigest(), texts,
                         np.array(labels, bool))


def _rows(path: Path, content: str) -> list[tuple[int, str, str]]:
    """``(line number, label, text)`` of each message."""
    first = content.split("\n", 1)[0].rstrip("\r")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    header = [name.strip().lower() for name in first.split(delimiter)]
    if "label" in header or "text" in header or path.suffix.lower() == ".csv":
        return _table_rows(path, content, delimiter)
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        label, tab, message = line.partition("\t")
        if not tab:
            raise EvaluationSetError(
                f"evaluation set {path}, line {number}: no tab between label and text "
                "(expected 'ham<TAB>text' or a header with label and text columns)")
        rows.append((number, label, message))
    return rows


def _table_rows(path: Path, content: str, delimiter: str) -> list[tuple[int, str, str]]:
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [column for column in ("label", "text") if column not in header]
    if missing:
        raise EvaluationSetError(
            f"evaluation set {path} has no {' or '.join(repr(c) for c in missing)} column "
            f"(its header is {header}); it needs 'label' and 'text' columns, or no header "
            "and 'ham<TAB>text' lines")
    label_at, text_at = header.index("label"), header.index("text")
    rows = []
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) <= max(label_at, text_at):
            raise EvaluationSetError(
                f"evaluation set {path}, line {reader.line_num}: {len(fields)} fields, "
                f"expected {len(header)} as in its header")
        rows.append((reader.line_num, fields[label_at], fields[text_at]))
    return rows
