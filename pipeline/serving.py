"""The TF Serving model base path: integer version folders, published atomically.

``tensorflow_model_server --model_base_path=<base>`` polls ``<base>`` and loads the largest
integer folder as soon as it appears, so a version must appear whole or not at all: it is
copied under a non-numeric name (which the server ignores) in the same folder and renamed
into place. A lock file beside the base path serialises promotions, so two racing runs add
exactly one version.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from pipeline.atomic_output import fsync_tree, remove_path

PROVENANCE_FILE = "assets.extra/provenance.json"
_INCOMING_PREFIX = ".incoming-"


def serving_versions(base: Path) -> list[int]:
    """Integer version folders under ``base``, ascending (what TF Serving would consider)."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and not p.name.startswith("0"))


def live_version(base: Path) -> int | None:
    """The version TF Serving's default "latest" policy serves: the largest integer folder."""
    versions = serving_versions(base)
    return versions[-1] if versions else None


def version_provenance(base: Path, version: int) -> dict:
    path = base / str(version) / PROVENANCE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def version_of_export(base: Path, export_id: str) -> int | None:
    """The newest version published from the export ``export_id``, if any."""
    for version in reversed(serving_versions(base)):
        if version_provenance(base, version).get("export_id") == export_id:
            return version
    return None


@contextlib.contextmanager
def promotion_lock(base: Path) -> Iterator[None]:
    """An exclusive lock on the model base path, held while a version is published."""
    base.parent.mkdir(parents=True, exist_ok=True)
    with open(base.parent / f".{base.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_incoming_leftovers(base: Path) -> None:
    """Drop copies that a killed promotion left under their non-numeric name.

    Only call this while holding :func:`promotion_lock`: then no copy is in flight.
    """
    if base.is_dir():
        for leftover in base.glob(f"{_INCOMING_PREFIX}*"):
            remove_path(leftover)


def publish_version(source: Path, base: Path) -> int:
    """Copy the export folder ``source`` into ``base`` as the next integer version.

    The caller holds :func:`promotion_lock`. Returns the new version number.
    """
    base.mkdir(parents=True, exist_ok=True)
    remove_incoming_leftovers(base)
    version = (live_version(base) or 0) + 1
    incoming = base / f"{_INCOMING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, incoming)
        fsync_tree(incoming)
        os.rename(incoming, base / str(version))
    except BaseException:
        remove_path(incoming)
        raise
    fd = os.open(base, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return version


def promote_export(staged: Path, base: Path, export_id: str) -> tuple[int, bool]:
    """Publish ``staged`` unless a version from the same export is already there.

    Returns ``(version, published)``: ``published`` is False when it was there already.
    """
    with promotion_lock(base):
        existing = version_of_export(base, export_id)
        if existing is not None:
            return existing, False
        return publish_version(staged, base), True
