"""Verify, parse, de-duplicate and split the SMS Spam Collection, and the extra labelled
sources an operator adds to it (``[DownloadCorpus] extra_sources``); fetching them is
:mod:`pipeline.data.download`.

Pure functions: nothing here knows about Luigi. The archive is read in memory and
only the ``SMSSpamCollection`` member is ever decompressed; nothing is extracted to disk.
"""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.download import CorpusError, DownloadPolicy, fetch
from pipeline.data.labelled_files import (LabelledFileError, LabelledMessages, name_of,
                                          parse_labelled)

CORPUS_MEMBER = "SMSSpamCollection"
CORPUS_SOURCE = CORPUS_MEMBER  # the corpus's name in the table's ``source`` column
SOURCES_SETTING = "[DownloadCorpus] extra_sources"
LABELS = ("ham", "spam")
SPLITS = ("train", "validation", "test")
SPLIT_SHARES = (0.7, 0.1, 0.2)  # train/validation/test, stratified by label

# The UCI SMS Spam Collection v.1, the default corpus: its member's checksum and terms.
UCI_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
UCI_TERMS = ("SMS Spam Collection v.1 (Almeida, Gómez Hidalgo and Yamakami, 2011; UCI Machine "
             "Learning Repository, dataset 228), licensed CC BY 4.0: use, share and adapt it "
             "with attribution. The pipeline downloads it; this repository does not "
             "redistribute it.")


# --------------------------------------------------------------------------- archive


def read_corpus_member(archive: bytes, max_member_bytes: int = 20_000_000) -> bytes:
    """Return the bytes of ``SMSSpamCollection`` from a zip archive held in memory.

    Refuses archives that are not zips, lack the member, hold unsafe member names
    (absolute, ``..``) or declare an absurd uncompressed size, before decompressing.
    """
    try:
        bundle = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise CorpusError(
            f"the download is not a zip archive (first bytes {archive[:16]!r}); the URL must "
            "point at smsspamcollection.zip"
        ) from None
    with bundle:
        names = bundle.namelist()
        unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in Path(n).parts
                  or (len(n) > 1 and n[1] == ":")]
        if unsafe:
            raise CorpusError(f"the archive holds unsafe member names {unsafe}; refusing it")
        members = [i for i in bundle.infolist() if Path(i.filename).name == CORPUS_MEMBER]
        if not members:
            raise CorpusError(
                f"the archive has no member {CORPUS_MEMBER!r} (it holds {names}); "
                "is it the UCI SMS Spam Collection?"
            )
        info = members[0]
        if info.file_size > max_member_bytes:
            raise CorpusError(
                f"{CORPUS_MEMBER} claims {info.file_size:,} bytes uncompressed, over the "
                f"{max_member_bytes:,} byte limit ([DownloadCorpus] max_member_bytes)"
            )
        with bundle.open(info) as member:
            data = member.read(max_member_bytes + 1)
        if len(data) > max_member_bytes:
            raise CorpusError(f"{CORPUS_MEMBER} inflates past {max_member_bytes:,} bytes")
        return data


def verify_sha256(data: bytes, expected: str) -> str:
    """Return the sha256 of ``data``; raise if it differs from the pinned ``expected``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.strip().lower():
        raise CorpusError(
            f"{CORPUS_MEMBER} has sha256 {actual}, expected {expected}. If this is a new "
            "corpus release you trust, pin it with [DownloadCorpus] sha256 = " + actual
        )
    return actual


# --------------------------------------------------------------------------- parsing


@dataclass
class ParsedCorpus:
    messages: pd.DataFrame  # columns: line, label, text
    malformed: dict[str, int] = field(default_factory=dict)
    lines: int = 0


def parse_corpus(data: bytes, max_malformed_share: float = 0.01) -> ParsedCorpus:
    """Parse ``label<TAB>text`` lines. Malformed lines are counted, never silently skipped.

    Raises when the share of malformed lines exceeds ``max_malformed_share``.
    """
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{CORPUS_MEMBER} is not valid UTF-8 ({error})") from None
    malformed = {"no_tab": 0, "unknown_label": 0, "empty_text": 0}
    rows = []
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        line = line[:-1] if line.endswith("\r") else line  # \r\n ends a line; \r is data
        label, tab, message = line.partition("\t")
        if not tab:
            malformed["no_tab"] += 1
        elif label not in LABELS:
            malformed["unknown_label"] += 1
        elif not message.strip():
            malformed["empty_text"] += 1
        else:
            rows.append((number, label, message))
    bad = sum(malformed.values())
    if lines and bad / len(lines) > max_malformed_share:
        raise CorpusError(
            f"{bad} of {len(lines)} corpus lines are malformed ({malformed}), over the allowed "
            f"share {max_malformed_share} ([DownloadCorpus] max_malformed_share)"
        )
    if not rows:
        raise CorpusError(f"{CORPUS_MEMBER} holds no usable messages")
    frame = pd.DataFrame(rows, columns=["line", "label", "text"])
    return ParsedCorpus(messages=frame, malformed=malformed, lines=len(lines))


def drop_repeated_texts(messages: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the first occurrence of each text; return the table and how many were dropped."""
    keep = ~messages["text"].duplicated(keep="first")
    return messages[keep].reset_index(drop=True), int((~keep).sum())


def stratified_split(labels: pd.Series, seed: int,
                     shares: tuple[float, float, float] = SPLIT_SHARES) -> np.ndarray:
    """Assign each row to train/validation/test, per label, reproducibly for ``seed``."""
    if abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError(f"split shares {shares} must add up to 1")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=object)
    for label in sorted(labels.unique()):
        rows = np.flatnonzero(labels.to_numpy() == label)
        rows = rows[rng.permutation(len(rows))]
        n_train = int(round(shares[0] * len(rows)))
        n_validation = int(round(shares[1] * len(rows)))
        assignment[rows[:n_train]] = SPLITS[0]
        assignment[rows[n_train:n_train + n_validation]] = SPLITS[1]
        assignment[rows[n_train + n_validation:]] = SPLITS[2]
    return assignment


def build_corpus_table(member: bytes, seed: int, max_malformed_share: float,
                       extra_sources: list[LabelledMessages] = ()) -> tuple[pd.DataFrame, dict]:
    """The clean table (source, line, label, text, split) and its statistics.

    The corpus comes first; each extra source adds the texts not seen before (see
    :func:`new_messages`) and is split 70/10/20 on its own, stratified, with the same
    seed, so the corpus's split never depends on the sources and each source's test part
    measures the model on that source.
    """
    parsed = parse_corpus(member, max_malformed_share)
    messages, repeated = drop_repeated_texts(parsed.messages)
    messages.insert(0, "source", CORPUS_SOURCE)
    messages["split"] = stratified_split(messages["label"], seed)
    parts, seen = [messages], dict(zip(messages["text"], messages["label"]))
    source_stats = [{"name": CORPUS_SOURCE, "lines": parsed.lines,
                     "repeated_texts_dropped": repeated, **_split_counts(messages)}]
    for source in extra_sources:
        added, counts = new_messages(source, seen)
        added["split"] = stratified_split(added["label"], seed)
        if len(added):  # (an empty part would turn the line numbers into floats)
            parts.append(added)
        source_stats.append({"name": source.name, **source.describe(), **counts,
                             **_split_counts(added)})
    table = pd.concat(parts, ignore_index=True)
    stats = {
        "lines": parsed.lines,
        "malformed": parsed.malformed,
        "repeated_texts_dropped": repeated,
        **_split_counts(table),
        "split_seed": seed,
        "sources": source_stats,
        "label_conflict_rule": LABEL_CONFLICT_RULE,
    }
    return table, stats


LABEL_CONFLICT_RULE = ("the first occurrence wins: a text already in the corpus or in an "
                       "earlier extra source keeps that label, and its later copies are "
                       "dropped and counted (conflicting_labels counts those with the other "
                       "label)")


def new_messages(source: LabelledMessages, seen: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """The rows of ``source`` whose text is not in ``seen`` (text -> label, updated in
    place), and counts of what was dropped; a source with nothing new gives no rows and
    a ``warning`` in the counts."""
    rows, repeated, conflicting = [], 0, 0
    for line, text, spam in zip(source.lines, source.texts, source.labels):
        label = LABELS[int(spam)]
        if text in seen:
            repeated += 1
            conflicting += seen[text] != label
            continue
        seen[text] = label
        rows.append((source.name, line, label, text))
    added = pd.DataFrame(rows, columns=["source", "line", "label", "text"])
    counts = {"repeated_texts_dropped": repeated, "conflicting_labels": conflicting}
    if not rows:  # the same spam labelled again next week: not an error, but say so
        counts["warning"] = (
            f"every text of extra source {source.location} ({len(source.texts)} messages) is "
            "already in the corpus or an earlier source, so it adds nothing to learn from")
    return added, counts


def _split_counts(messages: pd.DataFrame) -> dict:
    counts = messages.groupby(["split", "label"]).size()
    return {"messages": len(messages),
            "labels": {l: int((messages["label"] == l).sum()) for l in LABELS},
            "splits": {s: {l: int(counts.get((s, l), 0)) for l in LABELS} for s in SPLITS}}


# --------------------------------------------------------------------------- extra sources


@dataclass(frozen=True)
class SourceSpec:
    """One item of ``[DownloadCorpus] extra_sources``: where, and optionally the pinned
    sha256 of its bytes (``location#sha256=<hex>``)."""

    location: str
    pinned_sha256: str | None = None


def sources_from_setting(setting: str) -> list[SourceSpec]:
    """Parse the comma-separated ``extra_sources`` setting; names must be distinct."""
    specs = []
    for item in (part.strip() for part in setting.split(",")):
        if not item:
            continue
        location, _, pin = item.partition("#sha256=")
        pin = pin.strip().lower() or None
        if pin is not None and (len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin)):
            raise CorpusError(f"extra source {item!r}: '#sha256=' must be followed by 64 hex "
                              f"digits ({SOURCES_SETTING})")
        specs.append(SourceSpec(location.strip(), pin))
    names = [name_of(spec.location) for spec in specs]
    clashes = sorted({n for n in names if names.count(n) > 1 or n == CORPUS_SOURCE})
    if clashes:
        raise CorpusError(
            f"extra sources are named by their file name, and {clashes} is taken (by another "
            f"source or the corpus itself) in {SOURCES_SETTING}: rename the file")
    return specs


def fetch_source(spec: SourceSpec, policy: DownloadPolicy) -> bytes:
    """The bytes of one extra source, checked against its pin if it has one."""
    data = fetch(spec.location, policy, setting=SOURCES_SETTING)
    actual = hashlib.sha256(data).hexdigest()
    if spec.pinned_sha256 and actual != spec.pinned_sha256:
        raise CorpusError(
            f"extra source {spec.location} has sha256 {actual}, expected "
            f"{spec.pinned_sha256}. If you trust the new content, pin it with "
            f"{spec.location}#sha256={actual} in {SOURCES_SETTING}")
    return data


def read_source(data: bytes, spec: SourceSpec) -> LabelledMessages:
    try:
        return parse_labelled(data, spec.location, SOURCES_SETTING)
    except LabelledFileError as error:
        raise CorpusError(f"extra source {error}") from None


def write_corpus_table(table: pd.DataFrame, path: Path | str) -> None:
    """Write a table of :func:`build_corpus_table` for :func:`read_corpus_table`. Every
    text is quoted: pandas leaves a lone ``\r`` bare otherwise, and a reader would end the
    row there."""
    table.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def read_corpus_table(path: Path | str) -> pd.DataFrame:
    """Read a table written by :func:`build_corpus_table` (texts stay strings, even "NA").
    A table written before extra sources existed is all corpus."""
    table = pd.read_csv(path, dtype={"source": str, "line": "int64", "label": str,
                                     "text": str, "split": str},
                        keep_default_na=False, na_filter=False)
    if "source" not in table.columns:
        table.insert(0, "source", CORPUS_SOURCE)
    return table


def labelled_texts(tables: list[Path], extra_sources: str, policy: DownloadPolicy
                   ) -> frozenset[str]:
    """Every text of the corpus tables ``tables`` (:func:`read_corpus_table`) and of the
    extra sources of the setting ``extra_sources``: what needs no label again."""
    texts = set()
    for path in tables:
        texts.update(read_corpus_table(path)["text"])
    for spec in sources_from_setting(extra_sources):
        texts.update(read_source(fetch_source(spec, policy), spec).texts)
    return frozenset(texts)


def texts_and_labels(table: pd.DataFrame, split: str, source: str | None = None
                     ) -> tuple[list[str], np.ndarray]:
    """The texts of one split of a corpus table (of one ``source``, or all of them) and
    their labels (True for spam)."""
    rows = table[table["split"] == split]
    if source is not None:
        rows = rows[rows["source"] == source]
    return rows["text"].tolist(), (rows["label"] == "spam").to_numpy()


def sources_of(table: pd.DataFrame) -> list[str]:
    """The sources of a corpus table, the corpus first, then the extra sources in order."""
    return list(dict.fromkeys(table["source"]))
