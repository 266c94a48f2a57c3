"""What a batch input is, as files on disk: each file's path, size and modification time.

BatchScore names its scores by the input's path *and* this stamp, so a file edited since
it was scored is scored again into a new target (the old one is kept) instead of being
answered with its old scores; the stamp is also recorded beside the scores. Size and
modification time are what ``make`` and ``rsync`` compare: an edit changes one of them
without reading the file again. URIs of cluster file systems (hdfs://, s3a://...) are
not stamped here: their scores are named by the URI alone.
"""
from __future__ import annotations

import hashlib
import json
import os

from pipeline.scoring.spark_engine import is_remote, local_files


class InputChangedError(RuntimeError):
    """The input changed while it was being scored."""


def input_stamp(location: str) -> list[dict]:
    """``path``, ``size`` and ``modified_ns`` of each file ``location`` names (a file, a
    folder of part files or a glob), in path order; empty for a remote URI or nothing."""
    if is_remote(location):
        return []
    stamps = []
    for path in local_files(location):
        try:
            status = os.stat(path)
        except FileNotFoundError:  # removed while listing: the next check tells
            continue
        stamps.append({"path": os.path.abspath(path), "size": status.st_size,
                       "modified_ns": status.st_mtime_ns})
    return stamps


def stamp_digest(stamp: list[dict]) -> str:
    """A short name for a stamp (8 hex digits)."""
    return hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:8]


def check_unchanged(location: str, before: list[dict]) -> None:
    """Raise :class:`InputChangedError` when ``location`` no longer has the stamp
    ``before`` (an edit, a new or a removed part file while it was being scored)."""
    after = input_stamp(location)
    if after != before:
        changed = sorted({item["path"] for item in before} ^ {item["path"] for item in after}
                         | {b["path"] for b, a in zip(before, after) if a != b})
        raise InputChangedError(
            f"batch input {location} changed while it was being scored ({', '.join(changed)}); "
            "nothing was written. Run the same command again once the file is complete: it "
            "scores the new content into a new scores file")
