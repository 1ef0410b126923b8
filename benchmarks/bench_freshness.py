"""What a ``kedro run`` with nothing changed costs, against a first run and the bare start-up.

    python benchmarks/bench_freshness.py [--data ../shared/data] [--parts synthetic,real]

``synthetic``: in a copy of the project, the default ``kedro run`` once, then ``kedro registry
list`` (the project's bare start-up: Kedro, the plugins, the pipelines) and a ``kedro run`` with
nothing changed, alternately, three times each (medians reported).
``real``: in another copy, ``data/01_raw`` linked to ``--data``, ``kedro run --env real
--pipeline fedavg`` once (about 15 minutes on 2 CPUs), then the same command with nothing changed.
Each copy holds its own data and a frozen copy of the code, so edits to the working tree meanwhile
change nothing. Writes ``benchmarks/results/freshness.json``; parts not measured keep their figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the project-copy helper lives with the tests that use it too

from fednuclei.atomic import atomic_file  # noqa: E402
from tests.freshness.project import copy_project, run_kedro  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "freshness.json"
REPEATS = 3


def timed(project: Path, *args: str) -> tuple[float, int]:
    """Wall seconds of ``kedro <args>`` in ``project`` and the number of nodes it ran."""
    run = run_kedro(project, *args)
    if run.returncode != 0:
        raise SystemExit(f"kedro {' '.join(args)} failed in {project}:\n{run.log[-5000:]}")
    return round(run.seconds, 2), len(run.ran)


def synthetic(workdir: Path) -> dict:
    project = copy_project(workdir / "synthetic")
    first, nodes = timed(project, "run")
    registry, reruns, ran = [], [], []
    for _ in range(REPEATS):
        registry.append(timed(project, "registry", "list")[0])
        seconds, nodes_run = timed(project, "run")
        reruns.append(seconds)
        ran.append(nodes_run)
    return {
        "command": "kedro run (synthetic default, fedavg)",
        "first_run_seconds": first,
        "nodes": nodes,
        "registry_list_seconds": statistics.median(registry),
        "rerun_seconds": statistics.median(reruns),
        "rerun_minus_registry_seconds": round(statistics.median(reruns) - statistics.median(registry), 2),
        "nodes_run_on_rerun": max(ran),
        "samples": {"registry_list": registry, "rerun": reruns},
    }


def real(workdir: Path, data: Path) -> dict:
    project = copy_project(workdir / "real")
    raw = project / "data" / "01_raw"
    raw.mkdir(parents=True)
    for name in ("monuseg", "tnbc"):
        (raw / name).symlink_to((data / name).resolve())
    command = ("run", "--env", "real", "--pipeline", "fedavg")
    first, nodes = timed(project, *command)
    rerun, ran = timed(project, *command)
    return {
        "command": "kedro " + " ".join(command),
        "first_run_seconds": first,
        "nodes": nodes,
        "rerun_seconds": rerun,
        "nodes_run_on_rerun": ran,
        "rerun_share_of_first_run": round(rerun / first, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--parts", default="synthetic,real", help="comma-separated: synthetic, real")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if not set(parts) <= {"synthetic", "real"}:
        parser.error(f"--parts: unknown part in {args.parts!r}; use synthetic, real")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as workdir:
        for part in parts:
            results[part] = synthetic(Path(workdir)) if part == "synthetic" else real(Path(workdir), args.data)
            results["machine"] = f"{os.cpu_count()} CPUs"
            with atomic_file(RESULTS) as staging:  # after each part: a later failure keeps it
                staging.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps({part: results[part]}, indent=2))


if __name__ == "__main__":
    main()
