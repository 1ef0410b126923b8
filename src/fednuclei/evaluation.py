"""Whole-tile segmentation and scoring: sliding-window inference, instances, metrics per image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fednuclei.data.tiles import Tile
from fednuclei.metrics import image_metrics, pixel_metrics
from fednuclei.model.inference import predict_probabilities
from fednuclei.model.postprocess import instances_from_probabilities

logger = logging.getLogger(__name__)


def segment_image(
    model: torch.nn.Module, image: np.ndarray, *, patch: int = 256, overlap: float = 0.25, device=None
) -> np.ndarray:
    """Nuclei instances of a whole (H, W, 3) uint8 image at native resolution: (H, W) int32, 0 = background."""
    return instances_from_probabilities(predict_probabilities(model, image, patch=patch, overlap=overlap, device=device))


def score_tiles(
    model_for: Callable[[Tile], torch.nn.Module],
    tiles: Sequence[Tile],
    *,
    patch: int = 256,
    overlap: float = 0.25,
    device=None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Segment and score every tile.

    Args:
        model_for: the model that segments a tile (one global model, or a tile's own client model).
        tiles: tiles with ground-truth instances.

    Returns:
        One row per tile (tile, client, organ, source, split, has_instances, n_true, n_predicted and
        every metric of :func:`fednuclei.metrics.image_metrics`; object metrics NaN where
        ``has_instances`` is False), and the predicted instance maps by tile name.
    """
    rows, predictions = [], {}
    for tile in tqdm(tiles, desc="scoring tiles", unit="tile", leave=False):
        if tile.instances is None:
            raise ValueError(f"tile {tile.name} has no ground-truth instances to score against")
        predicted = segment_image(model_for(tile), tile.image, patch=patch, overlap=overlap, device=device)
        predictions[tile.name] = predicted
        rows.append(
            {
                "tile": tile.name, "client": tile.client, "organ": tile.organ, "source": tile.source,
                "split": tile.split, "has_instances": tile.has_instances,
                "n_true": tile.n_nuclei,
                "n_predicted": int(predicted.max()),
                **image_metrics(predicted, tile.instances, tile.has_instances),
            }
        )
    return pd.DataFrame(rows), predictions


def cross_site_dice(
    models: dict[str, torch.nn.Module], tiles: Sequence[Tile], *, patch: int = 256, overlap: float = 0.25, device=None
) -> pd.DataFrame:
    """Mean pixel Dice of each client's model (rows) on each client's tiles (columns)."""
    clients = sorted({tile.client for tile in tiles})
    matrix = pd.DataFrame(index=sorted(models), columns=clients, dtype=float)
    matrix.index.name, matrix.columns.name = "model", "tested_on"
    for name, model in models.items():
        for client in clients:
            scores = [
                pixel_metrics(segment_image(model, t.image, patch=patch, overlap=overlap, device=device) > 0, t.instances > 0)["dice"]
                for t in tiles
                if t.client == client
            ]
            matrix.loc[name, client] = float(np.mean(scores))
    return matrix
