"""Ingestion speed per MoNuSeg tile and peak memory of the real data_processing run.

    python benchmarks/bench_data_processing.py [--data ../shared/data]

Links ``data/01_raw/monuseg`` and ``data/01_raw/tnbc`` to the given folder when they are absent,
then writes ``benchmarks/results/data_processing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fednuclei.data.images import read_rgb
from fednuclei.data.monuseg import read_monuseg
from fednuclei.data.polygons import parse_monuseg_xml, rasterize_polygons

REPO = Path(__file__).resolve().parents[1]


def link_raw_data(data: Path) -> None:
    for name in ("monuseg", "tnbc"):
        link = REPO / "data" / "01_raw" / name
        if not link.exists():
            link.symlink_to((data / name).resolve())


def time_ingestion(train: Path) -> dict:
    xml_times = []
    for xml in sorted((train / "annotations").glob("*.xml")):
        start = time.perf_counter()
        image = read_rgb(train / "images" / f"{xml.stem}.tif")
        rasterize_polygons(parse_monuseg_xml(xml), image.shape[:2])
        xml_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    tiles = read_monuseg(train)
    total = time.perf_counter() - start
    return {
        "tiles": len(tiles),
        "xml_tiles": len(xml_times),
        "seconds_per_xml_tile_mean": round(float(np.mean(xml_times)), 3),
        "seconds_per_xml_tile_max": round(float(np.max(xml_times)), 3),
        "seconds_per_tile_read_monuseg": round(total / len(tiles), 3),
    }


def run_data_processing() -> dict:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    start = time.perf_counter()
    subprocess.run([str(kedro), "run", "--env", "real", "--pipeline", "data_processing"], cwd=REPO, env=env, check=True)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_seconds": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    args = parser.parse_args()
    link_raw_data(args.data)
    results = {
        "ingestion": time_ingestion(REPO / "data" / "01_raw" / "monuseg" / "train"),
        "data_processing_real": run_data_processing(),
        "machine": f"{os.cpu_count()} CPUs",
    }
    out = REPO / "benchmarks" / "results" / "data_processing.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
