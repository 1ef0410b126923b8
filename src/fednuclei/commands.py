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
from fednuclei.geojson import nuclei_features, write_geojson
from fednuclei.model.device import pick_device
from fednuclei.model.files import load_model
from fednuclei.model.inference import predict_probabilities
from fednuclei.model.postprocess import Postprocess, instances_from_probabilities
from fednuclei.model.unet import FOREGROUND, UNet
from fednuclei.run_settings import RunSettings

# Inference and post-processing as the pipelines score: the run settings' defaults.
DEFAULTS = RunSettings()
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
# png: instance labels and overlay; geojson: QuPath detections; both: all three files
FORMATS = ("png", "geojson", "both")
MLFLOW_URI_SCHEMES = ("runs:/", "models:/")


def load_predictor(model: str | Path, device) -> tuple[UNet, dict]:
    """The U-Net of a fednuclei model file, or of an MLflow model URI (``runs:/<run id>/<name>``,
    ``models:/<name>/<version>``, see :mod:`fednuclei.mlflow_models`).

    Raises:
        FileNotFoundError: no such model file.
        ValueError: naming the file or URI, when it holds no fednuclei model.
    """
    if str(model).startswith(MLFLOW_URI_SCHEMES):
        from fednuclei.mlflow_models import load_unet  # MLflow only for URIs: a file needs torch alone

        return load_unet(str(model), device)
    return load_model(model, device)


def predict_folder(model_path: str | Path, input_dir: Path, output_dir: Path, *, patch: int, overlap: float,
                   tta: bool = DEFAULTS.tta, output_format: str = "png") -> list[str]:
    """Segment each image of ``input_dir`` and write, by ``output_format`` (one of :data:`FORMATS`),
    ``<stem>.png`` (uint16 instances) and ``<stem>_overlay.png``, and/or ``<stem>.geojson``
    (:func:`fednuclei.geojson.nuclei_features`).

    Args:
        model_path: a fednuclei model file, or an MLflow model URI (:func:`load_predictor`).

    Returns:
        one message per image that could not be processed (the others are written regardless).
    """
    if output_format not in FORMATS:
        raise ValueError(f"output format must be one of {FORMATS}, got {output_format!r}")
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file, not a folder: give a folder for the results")
    images = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not images:
        raise FileNotFoundError(f"input folder {input_dir} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    device = pick_device()
    model, _ = load_predictor(model_path, device)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"output folder {output_dir} cannot be made: {error.strerror}") from error
    failures = []
    # disable=None: a bar on a terminal, nothing in a log file
    for path in tqdm(images, desc="predicting", unit="image", disable=None):
        try:
            image = read_rgb(path)
        except (OSError, ValueError) as error:
            failures.append(f"{path}: {error}")
            continue
        probs = predict_probabilities(model, image, patch=patch, overlap=overlap, device=device, tta=tta)
        instances = instances_from_probabilities(probs, Postprocess.of(DEFAULTS))
        problem = _write_results(output_dir, path.stem, image, probs, instances, output_format)
        if problem:
            failures.append(f"{path}: {problem}")
    return failures


def _write_results(output_dir: Path, stem: str, image: np.ndarray, probs: np.ndarray, instances: np.ndarray,
                   output_format: str) -> str | None:
    """Write one image's files (see :func:`predict_folder`); returns why they could not be, or None."""
    if output_format != "geojson":
        if instances.max() > np.iinfo(np.uint16).max:
            return f"{instances.max()} nuclei do not fit a uint16 label image"
        Image.fromarray(instances.astype(np.uint16)).save(output_dir / f"{stem}.png")
        Image.fromarray(overlay(image, instances)).save(output_dir / f"{stem}_overlay.png")
    if output_format != "png":
        write_geojson(nuclei_features(instances, probs[FOREGROUND]), output_dir / f"{stem}.geojson")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fednuclei", description="Nuclei segmentation of H&E images.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="segment every image (tif, png, jpg) of a folder")
    predict.add_argument("--model", required=True,
                         help="a model file written by training (.pt), or an MLflow model URI: "
                              "runs:/<run id>/<name> or models:/<name>/<version> (MLFLOW_TRACKING_URI "
                              "says where MLflow's store is; by default mlflow.db in this folder)")
    predict.add_argument("--input", type=Path, required=True, help="folder of images")
    predict.add_argument("--output", type=Path, required=True, help="folder for the results of each image")
    predict.add_argument("--format", choices=FORMATS, default="png",
                         help="png: <stem>.png (uint16 instance labels) and <stem>_overlay.png; geojson: "
                              "<stem>.geojson, one QuPath detection per nucleus; both (default png)")
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
                                  tta=args.tta, output_format=args.format)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
