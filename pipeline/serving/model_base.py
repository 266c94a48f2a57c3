"""The TF Serving model base path: integer version folders, published atomically.

``tensorflow_model_server --model_base_path=<base>`` polls ``<base>`` and loads the largest
integer folder as soon as it appears, so a version must appear whole or not at all: it is
copied under a non-numeric name (which the server ignores) in the same folder and renamed
into place. A lock file beside the base path serialises promotions and rollbacks, so two
racing runs add exactly one version. Every promotion, refusal and rollback is appended to
an audit log beside the base path (outside what the server watches).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from pipeline.atomic_output import fsync_directory, fsync_tree, remove_path

PROVENANCE_FILE = "assets.extra/provenance.json"
# What an export folder holds (pipeline.serving.export). Part of ExportSavedModel's fingerprint:
# an export made before a file was added is made again, and promoted as a new version,
# instead of being reused.
EXPORT_LAYOUT = "saved_model, warmup, provenance, vocabulary, monitoring reference"
_INCOMING_PREFIX = ".incoming-"
_REMOVING_PREFIX = ".removing-"


class ServingError(RuntimeError):
    """The model base path is not in the state an operation needs."""


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


def version_folder(base: Path, version: int | None) -> Path:
    """The folder of published ``version`` under ``base``; ``None`` (nothing published
    yet) is an error that says what to run."""
    if version is None:
        raise ServingError(f"no model version under {base}; run PromoteVersion")
    return base / str(version)


def version_provenance(base: Path, version: int) -> dict:
    path = base / str(version) / PROVENANCE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# An export's model card (written by ExportSavedModel, pipeline.serving.export), copied
# into its version folder; versions exported before model cards existed have neither file.
MODEL_CARD_FILE = "assets.extra/model_card.md"
MODEL_CARD_JSON_FILE = "assets.extra/model_card.json"


def published_version(base: Path, version: int | str) -> int:
    """``version`` (a number, or ``"live"``: the one the "latest" policy serves) if it is
    published under ``base``; otherwise a :class:`ServingError` naming the versions there."""
    versions = serving_versions(base)
    if version == "live":
        if not versions:
            raise ServingError(f"no model version under {base}, so none is live; "
                               f"run PromoteVersion")
        return versions[-1]
    if int(version) not in versions:
        raise ServingError(f"version {version} is not under {base} (versions there: "
                           f"{versions or 'none'}); pick one of those")
    return int(version)


def version_of_export(base: Path, export_id: str) -> int | None:
    """The newest version published from the export ``export_id``, if any."""
    for version in reversed(serving_versions(base)):
        if version_provenance(base, version).get("export_id") == export_id:
            return version
    return None


def was_published(base: Path, export_id: str) -> bool:
    """Whether ``export_id`` is, or once was, a version under ``base``.

    A pruned version counts: otherwise the nightly chain, whose PromoteVersion names the
    configured export, would gate that older export again once newer promotions pruned it.
    """
    if version_of_export(base, export_id) is not None:
        return True
    return any(record.get("event") == "promoted" and record.get("export_id") == export_id
               for record in read_audit(base))


def audit_log_path(base: Path) -> Path:
    return base.parent / f"{base.name}.audit.jsonl"


def shadow_folder(base: Path, export_id: str) -> Path:
    """Where the promotion of export ``export_id`` writes its shadow summary and flips:
    beside the base path, outside what the server watches."""
    return base.parent / f"{base.name}.shadow" / export_id


def append_audit(base: Path, event: str, **details) -> dict:
    """Append one JSON line (time, event, details) to the audit log of ``base``."""
    record = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "event": event, "model_base_path": str(base), **details}
    path = audit_log_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return record


def read_audit(base: Path) -> list[dict]:
    path = audit_log_path(base)
    if not path.exists():
        return []
    # Lines end at \n only. append_audit escapes every non-ASCII character, but a record
    # written with ensure_ascii=False holds U+2028 and the like raw, where str.splitlines
    # breaks (and read_text() would turn a raw \r into \n).
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").split("\n")
            if line.strip()]


@contextlib.contextmanager
def promotion_lock(base: Path) -> Iterator[None]:
    """An exclusive lock on the model base path, held while versions change."""
    base.parent.mkdir(parents=True, exist_ok=True)
    with open(base.parent / f".{base.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(base: Path) -> None:
    """Drop copies and removals that a killed run left under non-numeric names.

    Only call this while holding :func:`promotion_lock`: then nothing is in flight.
    """
    if base.is_dir():
        for prefix in (_INCOMING_PREFIX, _REMOVING_PREFIX):
            for leftover in base.glob(f"{prefix}*"):
                remove_path(leftover)


def publish_version(source: Path, base: Path, provenance_update: dict | None = None) -> int:
    """Copy the export folder ``source`` into ``base`` as the next integer version.

    The caller holds :func:`promotion_lock`. ``provenance_update`` is merged into the copy's
    provenance (a rollback records where it came from). Returns the new version number.
    """
    base.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(base)
    version = (live_version(base) or 0) + 1
    incoming = base / f"{_INCOMING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, incoming)
        if provenance_update:
            path = incoming / PROVENANCE_FILE
            provenance = json.loads(path.read_text()) if path.exists() else {}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**provenance, **provenance_update}, indent=2,
                                       sort_keys=True))
        fsync_tree(incoming)
        os.rename(incoming, base / str(version))
    except BaseException:
        remove_path(incoming)
        raise
    fsync_directory(base)
    return version


def prune_versions(base: Path, keep: int) -> list[int]:
    """Remove all but the newest ``keep`` versions (never the live one); return removed.

    A folder is renamed to a non-numeric name before it is deleted, so TF Serving never
    sees a half-deleted version. The caller holds :func:`promotion_lock`.
    """
    versions = serving_versions(base)
    doomed = versions[:-max(keep, 1)]
    for version in doomed:
        hidden = base / f"{_REMOVING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
        os.rename(base / str(version), hidden)
        remove_path(hidden)
    return doomed


def promote_export(staged: Path, base: Path, export_id: str, keep_versions: int = 0,
                   details: dict | None = None) -> tuple[int, bool]:
    """Publish ``staged`` unless a version from the same export is already there.

    Returns ``(version, published)``: ``published`` is False when it was there already.
    ``keep_versions`` > 0 prunes older versions afterwards.
    """
    with promotion_lock(base):
        existing = version_of_export(base, export_id)
        if existing is not None:
            return existing, False
        previous = live_version(base)
        version = publish_version(staged, base)
        removed = prune_versions(base, keep_versions) if keep_versions > 0 else []
        append_audit(base, "promoted", version=version, previous_live=previous,
                     export_id=export_id, source=str(staged), pruned=removed,
                     **(details or {}))
        return version, True


def rollback(base: Path, to_version: int, reason: str = "") -> int:
    """Republish ``to_version`` as the newest version, so the "latest" policy serves it.

    Returns the new version number. Raises :class:`ServingError` if it does not exist.
    """
    with promotion_lock(base):
        versions = serving_versions(base)
        if to_version not in versions:
            raise ServingError(f"version {to_version} is not under {base} (versions there: "
                               f"{versions or 'none'}); pick one of those")
        previous = live_version(base)
        version = publish_version(base / str(to_version), base,
                                  {"rolled_back_from": previous, "copy_of_version": to_version})
        append_audit(base, "rolled_back", version=version, copy_of_version=to_version,
                     previous_live=previous, reason=reason)
        return version


def write_deployment_files(folder: Path, model_name: str, base: Path,
                           stable: int | None = None, canary: int | None = None) -> dict:
    """TF Serving's ``--model_config_file`` (the newest version, or ``stable`` and ``canary``
    with version labels), batching parameters and monitoring config, in ``folder``
    (:mod:`pipeline.serving.deployment`); the versions named must be under ``base``."""
    from pipeline.serving import deployment

    versions = [v for v in (stable, canary) if v is not None]
    missing = [v for v in versions if v not in serving_versions(base)]
    if missing:
        raise ServingError(f"versions {missing} are not under {base} (versions there: "
                           f"{serving_versions(base) or 'none'})")
    try:
        return deployment.write_deployment_files(folder, model_name, base, stable, canary)
    except ValueError as error:
        raise ServingError(str(error)) from error
