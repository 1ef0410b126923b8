"""A throw-away copy of the project (configuration and package source) to run ``kedro`` in; also
used by ``benchmarks/bench_freshness.py``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_KEPT = {"pyproject.toml", ".telemetry", "conf", "src"}
# "<node>: fresh, skipped" or "<node>: stale: <why>", as the runner logs them at DEBUG
_DECISION = re.compile(r"DEBUG (\S+): (fresh, skipped|stale: .*)$", re.MULTILINE)


def copy_project(destination: Path) -> Path:
    """Copy the configuration and the package source to ``destination`` (no data, no MLflow
    store): runs there use that copy of the code, whatever happens to the working tree meanwhile."""
    shutil.copytree(REPO, destination, dirs_exist_ok=True, ignore=lambda folder, names: [
        name for name in names
        if (Path(folder) == REPO and name not in _KEPT) or name.endswith((".egg-info", "__pycache__"))])
    return destination


class KedroRun:
    """A finished ``kedro`` command: exit code, wall time, log, the nodes that ran, and the
    freshness decision logged for each node (``fresh, skipped`` or ``stale: <why>``)."""

    def __init__(self, completed: subprocess.CompletedProcess, seconds: float):
        self.returncode, self.seconds = completed.returncode, seconds
        self.log = completed.stdout + completed.stderr
        self.ran = set(re.findall(r"Completed node: (\S+)", self.log))
        self.decisions = dict(_DECISION.findall(self.log))

    def check(self) -> KedroRun:
        """This run, after asserting that it succeeded."""
        assert self.returncode == 0, self.log[-8000:]
        return self


def run_kedro(project: Path, *args: str) -> KedroRun:
    """Run ``kedro <args>`` in ``project``, logging each node's freshness decision (DEBUG)."""
    env = {**os.environ, "FEDNUCLEI_LOG_LEVEL": "DEBUG",
           "PYTHONPATH": str(project / "src")}  # the copy's code, in Flower's Ray workers too
    start = time.perf_counter()
    completed = subprocess.run([str(Path(sys.executable).with_name("kedro")), *args], cwd=project, env=env,
                               capture_output=True, text=True, check=False)
    return KedroRun(completed, time.perf_counter() - start)
