"""Signatures of files and folders: what a dataset on disk is, cheaply.

A small file (at most :data:`CONTENT_HASH_LIMIT` bytes: tables, JSON, plots) is signed by a hash
of its content, so rewriting it with the same bytes changes nothing. A larger file (a model) and
a folder (a tile set: thousands of PNGs) are signed by the relative path, size and modification
time (ns) of every file in it: reading gigabytes on every ``kedro run`` would cost minutes, while
a write changes a file's modification time or size. Symbolic links are followed, so a linked
dataset is signed by what it points to.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CONTENT_HASH_LIMIT = 1 << 20


def digest(text: str) -> str:
    """A short, stable hash of ``text`` (16 hex digits of its SHA-256)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_signature(path: str | os.PathLike) -> str | None:
    """The signature of the file or folder at ``path``; None when nothing is there."""
    path = Path(path)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or a file where a folder should be
        return None
    if path.is_dir():
        return f"tree:{_tree_signature(path)}"
    if status.st_size <= CONTENT_HASH_LIMIT:
        return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    return f"stat:{status.st_size}:{status.st_mtime_ns}"


def _tree_signature(folder: Path) -> str:
    """Hash of (relative path, size, mtime) of every file under ``folder``, in a fixed order."""
    listing = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders.sort()
        relative = os.path.relpath(parent, folder)
        for name in sorted(files):
            try:
                status = os.stat(os.path.join(parent, name))
                listing.append(f"{os.path.join(relative, name)}\t{status.st_size}\t{status.st_mtime_ns}")
            except FileNotFoundError:  # a dangling link: its target is gone, which is a change too
                listing.append(f"{os.path.join(relative, name)}\tdangling")
    return f"{len(listing)}:{digest(os.linesep.join(listing))}"
