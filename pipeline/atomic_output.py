"""Outputs that appear complete or not at all.

Every target of the pipeline is written under a hidden temporary name next to its
final place and renamed into place only when it is whole, so a killed run never
leaves a target that looks complete. Leftovers of killed runs are removed by the
next run that writes the same target.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

_TMP_MARK = ".tmp-"


def _temporary_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_stale_temporaries(final: Path) -> None:
    """Delete temporaries of ``final`` left by processes that no longer run."""
    prefix = f".{final.name}{_TMP_MARK}"
    if not final.parent.is_dir():
        return
    for leftover in final.parent.iterdir():
        if not leftover.name.startswith(prefix):
            continue
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and _process_alive(int(pid)):
            continue
        remove_path(leftover)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` (and the folders) to disk before a rename publishes it."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_directory(Path(folder))


def fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(final: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder; rename it to ``final`` if the block succeeds.

    ``final`` must not exist yet. On any error the temporary folder is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists; remove it to rebuild it")
    temporary = _temporary_sibling(final)
    temporary.mkdir()
    try:
        yield temporary
        fsync_tree(temporary)
        os.rename(temporary, final)
        fsync_directory(final.parent)
    except BaseException:
        remove_path(temporary)
        raise


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary file path beside ``final``; rename it to ``final`` if the block
    succeeds (for writers that take a path, such as Parquet's)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = _temporary_sibling(final)
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        fsync_directory(final.parent)
    except BaseException:
        remove_path(temporary)
        raise


@contextlib.contextmanager
def atomic_file(final: Path | str, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``final``; rename it to ``final`` if the block succeeds."""
    with atomic_path(final) as temporary:
        with open(temporary, mode, **open_kwargs) as handle:
            yield handle
