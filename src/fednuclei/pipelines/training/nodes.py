"""Nodes of the training template: build the run's settings, call the library, shape the outputs."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from fednuclei.data.tiles import Tile, TileSetFolders
from fednuclei.drawing import HEADLINE_METRICS, learning_curves, overlay, score_bars
from fednuclei.evaluation import cross_site_dice, score_tiles
from fednuclei.federated.simulation import run_federated
from fednuclei.methods import method_of, settings_for
from fednuclei.methods.baselines import labelled_client_tiles
from fednuclei.metrics import summarise
from fednuclei.model.device import pick_device
from fednuclei.model.files import load_model
from fednuclei.model.postprocess import Postprocess
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

SUMMARY_LEVELS = ["client", "organ", "split"]


def run_settings(
    client_patches: TileSetFolders,
    augmented_patches: TileSetFolders,
    client_partitions: TileSetFolders,
    tile_manifest: pd.DataFrame,
    labels: str,
    training: dict,
    profiles: dict,
    profile: str,
    *,
    method: str,
) -> RunSettings:
    """The settings of one method's run: the method's defaults, the profile's budget and the
    method's own parameters over them, the clients that start the federation (``join_round`` 0)
    with their supervision levels (all ``pixel`` in the ``full`` label view), and where their
    patches and validation tiles are."""
    if profile not in profiles:
        raise ValueError(f"unknown compute profile {profile!r}; profiles: {sorted(profiles)}")
    starting = tile_manifest[(tile_manifest["join_round"] == 0) & (tile_manifest["client"] != "")]
    levels = starting.groupby("client")["supervision"].first().sort_index()
    roots = [client_patches.root, augmented_patches.root, client_partitions.root]
    return settings_for({
        **profiles[profile],
        **training,
        "method": method,
        "clients": list(levels.index),
        "supervision": ["pixel"] * len(levels) if labels == "full" else list(levels),
        "train_roots": [str(roots[0].resolve()), str(roots[1].resolve())],
        "val_root": str(roots[2].resolve()),
        "data_version": data_version(roots),
    }, where=f"parameters of profile {profile!r} and {method}.training")


def data_version(roots: list[Path]) -> str:
    """A digest of every tile-set index under ``roots``: new data starts a new federated run
    instead of resuming checkpoints trained on the old."""
    digest = hashlib.sha256()
    for root in roots:
        for index in sorted(Path(root).glob("*/tiles.json")):
            digest.update(index.read_bytes())
    return digest.hexdigest()[:16]


def train_global_model(settings: RunSettings) -> tuple[UNet, pd.DataFrame]:
    """One model for every client: a federated method on Flower's simulation runtime (the model
    of the best round by validation Dice), or the method's own trainer (centralized)."""
    method = method_of(settings.method)
    if method.federated:
        best_path, history = run_federated(settings)
        return load_model(best_path)[0], pd.json_normalize(history)  # clients.<name>.<metric> columns
    model, history = method.trainer(*labelled_client_tiles(settings, Path(".")), settings, pick_device())
    return model, pd.DataFrame(history)


def train_local_models(settings: RunSettings) -> tuple[dict[str, UNet], pd.DataFrame]:
    """One model per client on its own patches, same budget."""
    models, history = method_of(settings.method).trainer(*labelled_client_tiles(settings, Path(".")), settings,
                                                         pick_device())
    return models, pd.DataFrame(history)


def round_metrics(history: pd.DataFrame) -> dict[str, list[dict]]:
    """Per-round numbers for MLflow (``step`` = round); with several runs (local training) each
    name is prefixed by its run (the client)."""
    several = "run" in history and history["run"].nunique() > 1
    metrics: dict[str, list[dict]] = {}
    for row in history.to_dict("records"):
        prefix = f"{row['run']}." if several else ""
        for key, value in row.items():
            if key in ("round", "run") or not isinstance(value, (int, float)):
                continue
            if np.isfinite(value):
                metrics.setdefault(prefix + key, []).append({"value": float(value), "step": int(row["round"])})
    return metrics


def _evaluate(models_for, tiles: list[Tile], settings: RunSettings):
    per_image, predictions = score_tiles(models_for, tiles, patch=settings.infer_patch, overlap=settings.infer_overlap,
                                         tta=settings.tta, postprocess=Postprocess.of(settings))
    summary = summarise(per_image, SUMMARY_LEVELS)
    by_name = {tile.name: tile for tile in tiles}
    instances = {name: Image.fromarray(labels.astype(np.uint16)) for name, labels in predictions.items()}
    overlays = {name: Image.fromarray(overlay(by_name[name].image, labels)) for name, labels in predictions.items()}
    return per_image, summary, instances, overlays


def evaluate_global_model(model: UNet, evaluation_tiles: list[Tile], settings: RunSettings):
    """Score one model on every held-out tile: per-image table, summary, instance PNGs, overlays."""
    return _evaluate(lambda tile: model, evaluation_tiles, settings)


def evaluate_local_models(models: dict[str, UNet], evaluation_tiles: list[Tile], settings: RunSettings):
    """Score each client's model on its own held-out tiles, and every model on every client's test
    tiles (the cross-site Dice matrix)."""
    own = [tile for tile in evaluation_tiles if tile.client in models]
    per_image, summary, instances, overlays = _evaluate(lambda tile: models[tile.client], own, settings)
    matrix = cross_site_dice(models, [t for t in own if t.split == "test"], patch=settings.infer_patch,
                             overlap=settings.infer_overlap)
    return per_image, summary, instances, overlays, matrix.reset_index()


def final_metrics(summary: pd.DataFrame) -> dict[str, dict]:
    """Overall test-split means and per-client test means, for MLflow."""
    test = summary[(summary["level"] == "split") & (summary["group"] == "test")]
    metrics = {f"test.{row.metric}": {"value": float(row.mean), "step": 0} for row in test.itertuples() if np.isfinite(row.mean)}
    return metrics


def plot_learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Training loss and validation Dice per round (one line per client for local training)."""
    return learning_curves(history)


def plot_client_scores(per_image: pd.DataFrame) -> plt.Figure:
    """Test Dice, AJI and PQ per client, as grouped bars."""
    test = per_image[per_image["split"] == "test"]
    return score_bars(test.groupby("client")[HEADLINE_METRICS].mean(), "test scores per client")
