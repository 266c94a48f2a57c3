"""Fetch, verify, parse, de-duplicate and split the SMS Spam Collection.

Pure functions: nothing here knows about Luigi. The archive is read in memory and
only the ``SMSSpamCollection`` member is ever decompressed; nothing is extracted to disk.
"""
from __future__ import annotations

import hashlib
import io
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import requests

CORPUS_MEMBER = "SMSSpamCollection"
LABELS = ("ham", "spam")
SPLITS = ("train", "validation", "test")
ALLOWED_SCHEMES = ("http", "https", "file")

ProgressCallback = Callable[[int, "int | None"], None]


class CorpusError(RuntimeError):
    """The corpus could not be fetched or is not what it should be."""


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard to try, and how much to accept, when fetching the corpus."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_bytes: int = 50_000_000


def fetch(url: str, policy: DownloadPolicy = DownloadPolicy(),
          on_progress: ProgressCallback | None = None) -> bytes:
    """Return the bytes behind ``url`` (http, https, file URL or a plain path).

    HTTP errors worth retrying (connection refused or reset, time-outs, 5xx, 429, a body
    cut short) are retried ``policy.attempts`` times with exponential backoff; then a
    :class:`CorpusError` says what happened on the last attempt.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        return _read_local(url, policy)
    if scheme not in ALLOWED_SCHEMES:
        raise CorpusError(
            f"unsupported URL scheme {scheme!r} in {url!r}: use http://, https://, file:// "
            "or a plain path ([DownloadCorpus] url or SPAM_CORPUS_URL)"
        )
    last_error: Exception | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            return _http_get(url, policy, on_progress)
        except _PermanentHttpError as error:
            raise CorpusError(str(error)) from None
        except (requests.RequestException, _RetryableHttpError) as error:
            last_error = error
            if attempt < policy.attempts:
                time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    raise CorpusError(
        f"could not download {url} after {policy.attempts} attempts: {last_error}. "
        "Check the network, or point [DownloadCorpus] url / SPAM_CORPUS_URL at a mirror "
        "or a local copy of the zip"
    )


class _RetryableHttpError(Exception):
    pass


class _PermanentHttpError(Exception):
    pass


def _http_get(url: str, policy: DownloadPolicy, on_progress: ProgressCallback | None) -> bytes:
    timeout = (policy.connect_timeout, policy.read_timeout)
    with requests.get(url, stream=True, timeout=timeout, verify=True) as response:
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableHttpError(f"HTTP {response.status_code} from {url}")
        if response.status_code >= 400:
            raise _PermanentHttpError(
                f"HTTP {response.status_code} {response.reason} from {url}: the corpus is not "
                "there. Fix [DownloadCorpus] url or SPAM_CORPUS_URL"
            )
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        if total is not None and total > policy.max_bytes:
            raise _PermanentHttpError(_too_large(url, total, policy))
        body = bytearray()
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body.extend(chunk)
            if len(body) > policy.max_bytes:
                raise _PermanentHttpError(_too_large(url, len(body), policy))
            if on_progress:
                on_progress(len(body), total)
        if total is not None and len(body) != total:
            raise _RetryableHttpError(f"body cut short: got {len(body)} of {total} bytes")
        return bytes(body)


def _too_large(url: str, size: int, policy: DownloadPolicy) -> str:
    return (f"{url} is {size:,} bytes, over the {policy.max_bytes:,} byte limit "
            "([DownloadCorpus] max_download_bytes); is it really the SMS Spam Collection?")


def _read_local(url: str, policy: DownloadPolicy) -> bytes:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) \
        if url.lower().startswith("file:") else Path(url)
    if not path.is_file():
        raise CorpusError(f"corpus archive {path} does not exist ([DownloadCorpus] url "
                          "or SPAM_CORPUS_URL)")
    if path.stat().st_size > policy.max_bytes:
        raise CorpusError(_too_large(str(path), path.stat().st_size, policy))
    return path.read_bytes()


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
        line = line.rstrip("\r")
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
                     shares: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> np.ndarray:
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


def build_corpus_table(member: bytes, seed: int, max_malformed_share: float
                       ) -> tuple[pd.DataFrame, dict]:
    """The clean table (line, label, text, split) and its statistics."""
    parsed = parse_corpus(member, max_malformed_share)
    messages, repeated = drop_repeated_texts(parsed.messages)
    messages["split"] = stratified_split(messages["label"], seed)
    counts = messages.groupby(["split", "label"]).size()
    stats = {
        "lines": parsed.lines,
        "malformed": parsed.malformed,
        "repeated_texts_dropped": repeated,
        "messages": len(messages),
        "labels": messages["label"].value_counts().to_dict(),
        "splits": {s: {l: int(counts.get((s, l), 0)) for l in LABELS} for s in SPLITS},
        "split_seed": seed,
    }
    return messages, stats


def read_corpus_table(path: Path | str) -> pd.DataFrame:
    """Read a table written by :func:`build_corpus_table` (texts stay strings, even "NA")."""
    return pd.read_csv(path, dtype={"line": "int64", "label": str, "text": str, "split": str},
                       keep_default_na=False, na_filter=False)


def texts_and_labels(table: pd.DataFrame, split: str) -> tuple[list[str], np.ndarray]:
    """The texts of one split of a corpus table and their labels (True for spam)."""
    rows = table[table["split"] == split]
    return rows["text"].tolist(), (rows["label"] == "spam").to_numpy()
