"""Writes that leave either the old file (or folder) or the complete new one, never half of it."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a write killed mid-way leaves beside its target: the staging file or folder
# (".<name>.<8 characters of tempfile>"), or the replaced folder not yet removed (".<name>.old-<pid>").
_LEFTOVER = re.compile(r"\.(?P<target>.+)\.(?:[a-z0-9_]{8}|(?P<replaced>old-\d+))")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging path beside ``path``; it replaces ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    os.chmod(staging, 0o644)  # mkstemp makes it private; the result is an ordinary data file
    try:
        yield Path(staging)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder beside ``folder``; it replaces ``folder`` only when the block succeeds."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary data folder
    try:
        yield staging
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_folder(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old)


def remove_staging_leftovers(root: str | os.PathLike, keep_out: tuple[str | os.PathLike, ...] = ()) -> list[Path]:
    """Remove what writes of :func:`atomic_file` and :func:`atomic_folder` left under ``root`` when
    their process died mid-way (SIGKILL, power loss): staging files and folders, and replaced
    folders not yet removed. A replaced folder whose target is missing (the process died between
    the swap's two renames) is put back instead. Links are not followed.

    A live write's staging looks the same: call this only when nothing writes under ``root``
    (``kedro run`` holds the project lock, :mod:`fednuclei.project_lock`).

    Args:
        keep_out: folders under ``root`` not to look into (raw data, say).

    Returns:
        the paths removed or put back.
    """
    keep_out = {Path(folder) for folder in keep_out}
    found = []
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        leftovers = [name for name in [*folders, *files] if _LEFTOVER.fullmatch(name)]
        folders[:] = [name for name in folders if name not in leftovers and here / name not in keep_out]
        for name in leftovers:
            path, match = here / name, _LEFTOVER.fullmatch(name)
            target = here / match["target"]
            if match["replaced"] and not (target.exists() or target.is_symlink()):
                path.rename(target)
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            found.append(path)
    return found
