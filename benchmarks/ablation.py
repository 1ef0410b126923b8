"""Quality levers of training and post-processing, each against the same baseline, on validation tiles.

    python benchmarks/ablation.py --data ../shared/data [--epochs 3] [--variants baseline,cosine,...]

Centralized training on the pooled patches of the five MoNuSeg organ clients (their training
tiles and 4 seeded augmented copies of each, cut into 256 px patches, as the `real` pipeline
prepares them), at the `real` CPU profile's model and budget by default (width 8, depth 4,
batch 8, Adam lr 1e-3, 3 passes). Every training variant changes one setting of the baseline,
and every trained model is scored on the validation tiles (never a test split) with each
watershed, with and without flip test-time augmentation, and at each pair of ``--thresholds``
(the tiles are predicted once per TTA setting and post-processed every way). Same seeds everywhere.

Appends one row per (variant, watershed, tta, thresholds) to ``benchmarks/results/ablation.csv``
with the budget, so runs at several budgets sit in one table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monuseg_clients import organ_clients  # noqa: E402

from fednuclei.augment import augment_tiles  # noqa: E402
from fednuclei.data.patches import extract_patches  # noqa: E402
from fednuclei.evaluation import score_prediction  # noqa: E402
from fednuclei.methods.baselines import train_with_validation  # noqa: E402
from fednuclei.model.device import pick_device  # noqa: E402
from fednuclei.model.inference import predict_probabilities  # noqa: E402
from fednuclei.model.postprocess import WATERSHEDS, Postprocess  # noqa: E402
from fednuclei.run_settings import RunSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "ablation.csv"
# The `real` CPU profile over the settings' defaults of the day this ablation set them.
BASELINE = RunSettings(width=8, depth=4, groups=4, batch_size=8, lr=1e-3, infer_patch=256, lr_schedule="constant",
                       flip_rotate=False, contour_width=1, contour_weight=1.0)
VARIANTS = {
    "baseline": {},
    "contour_width_2": {"contour_width": 2},
    "contour_width_3": {"contour_width": 3},
    "contour_weight_2": {"contour_weight": 2.0},
    "cosine_lr": {"lr_schedule": "cosine"},
    "flip_rotate": {"flip_rotate": True},
    # the two winners of the single changes, together
    "contour_width_2_weight_2": {"contour_width": 2, "contour_weight": 2.0},
}
AUGMENTED_COPIES = 4


def training_patches(data: Path) -> tuple[list, list]:
    """The pooled training patches (originals and augmented copies) and the validation tiles."""
    clients = organ_clients(data)
    tiles = [t for ts in clients.train_tiles.values() for t in ts]
    copies = augment_tiles(tiles, AUGMENTED_COPIES, seed=0)
    return extract_patches(tiles + copies, 256, 256), clients.val_tiles


def run(variant: str, changes: dict, patches: list, val: list, epochs: int, device: torch.device,
        thresholds: list[tuple[float, float]]) -> list[dict]:
    settings = replace(BASELINE, **changes, num_server_rounds=epochs)
    start = time.perf_counter()
    model, history = train_with_validation(patches, val, settings, device, label="ablation")
    seconds = time.perf_counter() - start
    rows = []
    with ThreadPoolExecutor() as pool:  # post-processing, one thread per core
        for tta in (False, True):
            # one prediction per tile, post-processed every way
            probabilities = [predict_probabilities(model, tile.image, patch=settings.infer_patch,
                                                   overlap=settings.infer_overlap, device=device, tta=tta)
                             for tile in val]
            for watershed, (foreground, contour) in itertools.product(WATERSHEDS, thresholds):
                postprocess = Postprocess(watershed, foreground, contour)
                scores = list(pool.map(lambda probs, tile: score_prediction(probs, tile.instances, tile.has_instances,
                                                                            postprocess)[1], probabilities, val))
                means = pd.DataFrame(scores)[["dice", "aji", "pq"]].mean()
                rows.append({"variant": variant, "changes": json.dumps(changes), "epochs": epochs,
                             "patches": len(patches), "watershed": watershed, "tta": tta,
                             "foreground_threshold": foreground, "contour_threshold": contour,
                             "val_dice": round(float(means["dice"]), 4), "val_aji": round(float(means["aji"]), 4),
                             "val_pq": round(float(means["pq"]), 4), "n_val_tiles": len(val),
                             "best_block": int(max(history, key=lambda h: h["val_dice"])["round"]),
                             "train_minutes": round(seconds / 60, 1)})
                print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the pooled patches (the budget)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated names of {list(VARIANTS)}, or JSON objects of settings changes")
    parser.add_argument("--thresholds", default="0.5,0.5",
                        help="foreground,contour probability thresholds of the watershed; several pairs joined by ';'")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    thresholds = [tuple(float(t) for t in pair.split(",")) for pair in args.thresholds.split(";")]
    device = pick_device()
    patches, val = training_patches(args.data)
    rows = []
    for spec in args.variants.split(";" if "{" in args.variants else ","):
        name, changes = (spec, VARIANTS[spec]) if spec in VARIANTS else ("+".join(json.loads(spec)), json.loads(spec))
        rows += run(name, changes, patches, val, args.epochs, device, thresholds)
        table = pd.DataFrame(rows)
        previous = pd.read_csv(args.out) if args.out.is_file() else None
        merged = table if previous is None else pd.concat([previous, table]).drop_duplicates(
            ["variant", "epochs", "watershed", "tta", "foreground_threshold", "contour_threshold"], keep="last")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        merged.to_csv(args.out, index=False)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
