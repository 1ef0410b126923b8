"""One run at a time per project folder: an exclusive ``fcntl.flock`` on a file in the project.

The kernel holds the lock for the open file and drops it when its holder closes the file or dies,
SIGKILL included, so a killed run never leaves the project locked. While held, the file names its
holder (PID, command, start time) for the error another run gets.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

#: The lock of a project folder, relative to it (``data/`` is not under version control).
LOCK_FILE = Path("data") / ".kedro_run.lock"


class ProjectLocked(RuntimeError):
    """Another process holds the project's lock."""


class ProjectLock:
    """The lock file at ``path``: :meth:`acquire` takes it or raises :class:`ProjectLocked`,
    :meth:`release` gives it back; also a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self) -> ProjectLock:
        """Take the lock without waiting.

        Raises:
            ProjectLocked: naming the lock file and its holder.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # open as long as the lock is held: closing it drops the lock
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not written its PID yet"
            file.close()
            raise ProjectLocked(f"{self.path} is held by {holder}: another run is using this project folder. "
                                "Run again when it has ended (the lock goes with its process, even a killed one)"
                                ) from None
        file.truncate(0)
        file.write(f"PID {os.getpid()} ({' '.join(sys.argv)}), since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        """Give the lock back (nothing when it is not held)."""
        if self._file is not None:
            self._file.truncate(0)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
