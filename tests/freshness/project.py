"""A throw-away copy of the project (configuration and package source) to run ``kedro`` in, and tiny
settings for it; also used by ``benchmarks/bench_freshness.py``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
KEDRO = str(Path(sys.executable).with_name("kedro"))
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


def kedro_environment(project: Path) -> dict[str, str]:
    """The environment of a ``kedro`` command in ``project``: each node's freshness decision logged (DEBUG)."""
    return {**os.environ, "FEDNUCLEI_LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(project / "src")}  # the copy's code, in Flower's Ray workers too


def run_kedro(project: Path, *args: str, cwd: Path | None = None) -> KedroRun:
    """Run ``kedro <args>`` in ``project`` (from ``cwd``, by default the project folder)."""
    start = time.perf_counter()
    completed = subprocess.run([KEDRO, *args], cwd=cwd or project, env=kedro_environment(project),
                               capture_output=True, text=True, check=False)
    return KedroRun(completed, time.perf_counter() - start)


class StartedKedro:
    """``kedro <args>`` started in ``project`` (from ``cwd``, by default the project folder) and left
    running; its log goes to a file beside the project as it is written."""

    def __init__(self, project: Path, *args: str, cwd: Path | None = None):
        self.log_path = project.parent / f"kedro-{time.time_ns()}.log"
        self._start = time.perf_counter()
        with open(self.log_path, "w") as log:
            # Ctrl-C's default action, as on a terminal, even where pytest was started with SIGINT ignored
            # (a shell's background job): Python then never raises KeyboardInterrupt
            self.process = subprocess.Popen([KEDRO, *args], cwd=cwd or project, stdout=log, stderr=subprocess.STDOUT,
                                            env={**kedro_environment(project), "PYTHONUNBUFFERED": "1"},
                                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    @property
    def log(self) -> str:
        """The log so far."""
        return self.log_path.read_text()

    def wait(self) -> KedroRun:
        """The finished command."""
        returncode = self.process.wait()
        return KedroRun(subprocess.CompletedProcess(self.process.args, returncode, self.log, ""),
                        time.perf_counter() - self._start)


def tiny_settings(conf: Path) -> None:
    """``conf/local`` settings small enough that ``compare`` trains its seven methods in a few
    minutes on two CPU cores: the base settings with fewer, smaller tiles, one augmented copy,
    one round of a shallower model."""
    catalog = yaml.safe_load((conf / "base" / "catalog.yml").read_text())
    catalog["raw_tiles"]["sources"]["synthetic"].update(tiles_per_hospital=5, size=128)
    parameters = {}
    for file in sorted((conf / "base").glob("parameters*.yml")):
        parameters.update(yaml.safe_load(file.read_text()))
    parameters["augmentation"]["copies"] = 1
    parameters["patches"].update(size=128, stride=128)
    parameters["profiles"]["cpu"].update(num_server_rounds=1, incremental_rounds=0, depth=2, infer_patch=128)
    (conf / "local").mkdir(exist_ok=True)
    (conf / "local" / "catalog.yml").write_text(yaml.safe_dump({"raw_tiles": catalog["raw_tiles"]}))
    (conf / "local" / "parameters.yml").write_text(yaml.safe_dump(
        {key: parameters[key] for key in ("augmentation", "patches", "profiles")}))
