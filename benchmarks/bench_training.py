"""Training and inference speed of the default model, federated overhead, and quality on MoNuSeg.

    python benchmarks/bench_training.py [--data ../shared/data] [--skip-runs]

1. Throughput (patches/s) and peak memory of training the real CPU profile's U-Net on 256 px
   MoNuSeg patches, and the time to segment one 1000x1000 tile.
2. ``kedro run --env real --pipeline fedavg`` then ``--pipeline centralized`` (CPU profile: five
   organ clients, 3 rounds; same budget for centralized), from scratch. Federated overhead is
   the summed wall time of the rounds over the summed client training time; quality is Dice,
   AJI and PQ on the validation, test and (when present) official MoNuSeg test tiles.

Writes ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from fednuclei.data.monuseg import read_monuseg
from fednuclei.data.patches import extract_patches
from fednuclei.evaluation import segment_image
from fednuclei.methods import settings_for
from fednuclei.model.training import train_epochs
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_data_processing import link_raw_data  # noqa: E402


def cpu_profile() -> RunSettings:
    """The settings of the `real` CPU profile (its overrides over the settings' defaults)."""
    parameters = yaml.safe_load((REPO / "conf" / "real" / "parameters_training.yml").read_text())
    return settings_for(parameters["profiles"]["cpu"], where="conf/real cpu profile")


def model_speed(profile: RunSettings) -> dict:
    tiles = read_monuseg(REPO / "data" / "01_raw" / "monuseg" / "train")[:2]
    patches = extract_patches(tiles, 256, 256)[:32]
    torch.manual_seed(0)
    model = UNet(width=profile.width, depth=profile.depth, groups=profile.groups)
    device = torch.device("cpu")
    train_epochs(model, patches[:8], epochs=1, batch_size=8, lr=1e-3, device=device)  # warm-up
    result = train_epochs(model, patches, epochs=2, batch_size=profile.batch_size, lr=1e-3, device=device)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        segment_image(model, tiles[0].image, patch=profile.infer_patch, overlap=profile.infer_overlap)
        seconds.append(time.perf_counter() - start)
    return {
        "model": {k: getattr(profile, k) for k in ("width", "depth", "groups")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "train_patches_per_second_256px": round(2 * len(patches) / result.seconds, 2),
        "train_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "inference_seconds_1000px_tile_median": round(statistics.median(seconds), 2),
    }


def kedro_run(pipeline: str) -> float:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("kedro")), "run", "--env", "real", "--pipeline", pipeline],
                   cwd=REPO, env=env, check=True)
    return time.perf_counter() - start


def quality(method: str) -> dict:
    """Mean Dice, AJI and PQ per held-out set: MoNuSeg val and test tiles of the training clients,
    the official MoNuSeg test tiles when present, and TNBC (an institution the run never saw).
    AJI and PQ exist only for tiles with exact instances (MoNuSeg tiles with XML)."""
    per_image = pd.read_csv(REPO / "data" / "08_reporting" / method / "metrics_per_image.csv")
    sets = {
        "monuseg_val": (per_image["source"] == "monuseg") & (per_image["split"] == "val"),
        "monuseg_test": (per_image["source"] == "monuseg") & (per_image["split"] == "test"),
        "monuseg_external_test": per_image["split"] == "external_test",
        "tnbc_unseen_val_test": per_image["source"] == "tnbc",
    }
    report = {}
    for name, rows in sets.items():
        chosen = per_image[rows]
        if chosen.empty:
            continue
        means = chosen[["dice", "aji", "pq"]].mean()  # NaN where no tile has exact instances
        report[name] = {metric: None if pd.isna(value) else round(float(value), 4) for metric, value in means.items()}
        report[name].update(n_images=len(chosen), n_with_exact_instances=int(chosen["has_instances"].sum()))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--skip-runs", action="store_true", help="only the model speed part")
    args = parser.parse_args()
    link_raw_data(args.data)
    profile = cpu_profile()
    results = {"machine": f"{os.cpu_count()} CPUs, no GPU", "model_speed": model_speed(profile)}
    print(json.dumps(results, indent=2), flush=True)
    if not args.skip_runs:
        checkpoints = REPO / "data" / "06_models" / "fedavg" / "rounds"
        if checkpoints.is_dir() and not checkpoints.is_symlink():
            shutil.rmtree(checkpoints)  # a fresh run, not a resumed one
        fedavg_seconds = kedro_run("fedavg")
        history = pd.read_csv(REPO / "data" / "08_reporting" / "fedavg" / "training_history.csv")
        client_seconds = history.filter(regex=r"^clients\..*\.train_seconds$").to_numpy().sum()
        centralized_seconds = kedro_run("centralized")
        centralized = pd.read_csv(REPO / "data" / "08_reporting" / "centralized" / "training_history.csv")
        results["budget"] = {k: getattr(profile, k) for k in ("num_server_rounds", "local_epochs", "batch_size", "lr")}
        results["fedavg"] = {
            "pipeline_wall_seconds": round(fedavg_seconds),
            "rounds": len(history),
            "round_wall_seconds_total": round(history["round_seconds"].sum(), 1),
            "client_train_seconds_total": round(float(client_seconds), 1),
            "overhead_ratio": round(history["round_seconds"].sum() / client_seconds, 3),
            # two simulated clients train at once on two cores: the ideal wall time is half the sum
            "wall_over_ideal_parallel": round(history["round_seconds"].sum() / (client_seconds / 2), 3),
            "quality": quality("fedavg"),
        }
        results["centralized"] = {
            "pipeline_wall_seconds": round(centralized_seconds),
            "train_seconds_total": round(centralized["train_seconds"].sum(), 1),
            "quality": quality("centralized"),
        }
    out = REPO / "benchmarks" / "results" / "training.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
