"""The `fednuclei` console command (`fednuclei predict`): segment every image of a folder.

Not `cli.py`: Kedro reads a package's `cli.py` as its own project commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fednuclei.data.images import read_rgb
from fednuclei.drawing import overlay
from fednuclei.evaluation import segment_image
from fednuclei.model.device import pick_device
from fednuclei.model.files import load_model
from fednuclei.model.postprocess import Postprocess
from fednuclei.run_settings import RunSettings

# Inference and post-processing as the pipelines score: the run settings' defaults.
DEFAULTS = RunSettings()
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def predict_folder(model_path: Path, input_dir: Path, output_dir: Path, *, patch: int, overlap: float,
                   tta: bool = DEFAULTS.tta) -> list[str]:
    """Write ``<stem>.png`` (uint16 instances) and ``<stem>_overlay.png`` for each image of ``input_dir``.

    Returns:
        one message per image that could not be processed (the others are written regardless).
    """
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist")
    images = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not images:
        raise FileNotFoundError(f"input folder {input_dir} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    device = pick_device()
    model, _ = load_model(model_path, device)
    output_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for path in tqdm(images, desc="predicting", unit="image"):
        try:
            image = read_rgb(path)
        except (OSError, ValueError) as error:
            failures.append(f"{path}: {error}")
            continue
        instances = segment_image(model, image, patch=patch, overlap=overlap, device=device, tta=tta,
                                  postprocess=Postprocess.of(DEFAULTS))
        if instances.max() > np.iinfo(np.uint16).max:
            failures.append(f"{path}: {instances.max()} nuclei do not fit a uint16 label image")
            continue
        Image.fromarray(instances.astype(np.uint16)).save(output_dir / f"{path.stem}.png")
        Image.fromarray(overlay(image, instances)).save(output_dir / f"{path.stem}_overlay.png")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fednuclei", description="Nuclei segmentation of H&E images.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="segment every image (tif, png, jpg) of a folder")
    predict.add_argument("--model", type=Path, required=True, help="a model file written by training (.pt)")
    predict.add_argument("--input", type=Path, required=True, help="folder of images")
    predict.add_argument("--output", type=Path, required=True, help="folder for <stem>.png and <stem>_overlay.png")
    predict.add_argument("--patch", type=int, default=DEFAULTS.infer_patch,
                         help=f"sliding-window size in pixels (default {DEFAULTS.infer_patch})")
    predict.add_argument("--overlap", type=float, default=DEFAULTS.infer_overlap,
                         help=f"window overlap fraction (default {DEFAULTS.infer_overlap})")
    predict.add_argument("--tta", action=argparse.BooleanOptionalAction, default=DEFAULTS.tta,
                         help="average the 8 flips and 90-degree rotations of each window (8x slower)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        failures = predict_folder(args.model, args.input, args.output, patch=args.patch, overlap=args.overlap,
                                  tta=args.tta)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
