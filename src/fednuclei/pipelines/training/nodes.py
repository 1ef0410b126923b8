"""Nodes of the training template: build the run's settings, call the library, shape the outputs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from fednuclei.data.tiles import Tile, TileSetFolders
from fednuclei.drawing import (
    HEADLINE_METRICS,
    best_and_worst,
    client_rounds,
    cross_site_heatmap,
    learning_curves,
    overlay,
    score_bars,
)
from fednuclei.evaluation import cross_site_dice, score_tiles
from fednuclei.federated.simulation import run_federated
from fednuclei.methods import method_of, profile_values, settings_for
from fednuclei.methods.baselines import labelled_client_tiles
from fednuclei.methods.stages import Client, plan_stages
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
    """The settings of a method trained once on the first stage's data (local, centralized): the
    method's defaults, the profile's budget and the method's own parameters over them, the
    clients that start the federation with their supervision levels (all ``pixel`` in the
    ``full`` label view), and where their patches and validation tiles are."""
    values = profile_values(profiles, profile, training, method)
    clients = {name: client for name, client in _clients(tile_manifest, labels).items() if client.join_round <= 1}
    return settings_for({**values, **_data([client_patches, augmented_patches], [client_partitions]),
                         "clients": list(clients), "supervision": [c.supervision for c in clients.values()]},
                        where=_where(profile, method))


def stage_settings(
    client_patches: TileSetFolders,
    augmented_patches: TileSetFolders,
    client_partitions: TileSetFolders,
    incremental_patches: TileSetFolders,
    incremental_augmented_patches: TileSetFolders,
    incremental_partitions: TileSetFolders,
    tile_manifest: pd.DataFrame,
    labels: str,
    training: dict,
    profiles: dict,
    profile: str,
    *,
    method: str,
) -> tuple[RunSettings, RunSettings, RunSettings]:
    """The settings of a federated method's stages (:func:`~fednuclei.methods.stages.plan_stages`):
    the first stage on its data, the incremental stage and the retraining from scratch on all of it."""
    first = _data([client_patches, augmented_patches], [client_partitions])
    everything = _data([client_patches, augmented_patches, incremental_patches, incremental_augmented_patches],
                       [client_partitions, incremental_partitions])
    clients = _clients(tile_manifest, labels)
    new_tiles = bool((tile_manifest["incremental"] & (tile_manifest["join_round"] <= 1)).any())
    try:
        stages = plan_stages(profile_values(profiles, profile, training, method), clients, new_tiles, first, everything)
    except ValueError as error:
        raise ValueError(f"{_where(profile, method)}: {error}") from error
    return stages.first, stages.incremental, stages.scratch


def _where(profile: str, method: str) -> str:
    return f"parameters of profile {profile!r} and {method}.training"


def _clients(tile_manifest: pd.DataFrame, labels: str) -> dict[str, Client]:
    """Every client of the manifest, by name: its supervision (``pixel`` in the ``full`` view) and join round."""
    rows = tile_manifest[tile_manifest["client"] != ""].groupby("client")[["supervision", "join_round"]].first()
    return {name: Client("pixel" if labels == "full" else row.supervision, int(row.join_round))
            for name, row in rows.sort_index().iterrows()}


def _data(train: list[TileSetFolders], val: list[TileSetFolders]) -> dict:
    """The training and validation roots, and the digest of every tile-set index under them: new
    data starts a new federated run instead of resuming checkpoints trained on the old."""
    digest = hashlib.sha256()
    for root in (folders.root for folders in (*train, *val)):
        for index in sorted(Path(root).glob("*/tiles.json")):
            digest.update(index.read_bytes())
    return {"train_roots": [str(f.root.resolve()) for f in train], "val_roots": [str(f.root.resolve()) for f in val],
            "data_version": digest.hexdigest()[:16]}


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


def all_rounds(first: pd.DataFrame, incremental: pd.DataFrame) -> pd.DataFrame:
    """Every round of a federated run: the first stage's, then the incremental stage's."""
    return pd.concat([first, incremental], ignore_index=True)


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


def plot_client_rounds(history: pd.DataFrame) -> plt.Figure:
    """Each client's aggregation weight and usable images per round."""
    return client_rounds(history)


def plot_cross_site_dice(matrix: pd.DataFrame) -> plt.Figure:
    """The local models' cross-site test Dice as a heatmap."""
    return cross_site_heatmap(matrix)


def plot_best_and_worst(per_image: pd.DataFrame, evaluation_tiles: list[Tile],
                        predictions: dict[str, Callable[[], Image.Image]]) -> plt.Figure:
    """Each client's best and worst test tile by Dice, beside their ground truth."""
    tiles = {tile.name: tile for tile in evaluation_tiles}
    picks = []
    for client, rows in per_image[per_image["split"] == "test"].dropna(subset=["dice"]).groupby("client"):
        ordered = rows.sort_values("dice")
        for kind, row in (("best", ordered.iloc[-1]), ("worst", ordered.iloc[0])):
            predicted = np.asarray(predictions[row["tile"]]())
            picks.append((f"{client}, {kind} (Dice {row['dice']:.2f})", tiles[row["tile"]], predicted))
    return best_and_worst(picks)


def plot_client_scores(per_image: pd.DataFrame) -> plt.Figure:
    """Test Dice, AJI and PQ per client, as grouped bars."""
    test = per_image[per_image["split"] == "test"]
    return score_bars(test.groupby("client")[HEADLINE_METRICS].mean(), "test scores per client")
