"""Whole-tile segmentation and scoring: sliding-window inference, instances, metrics per image."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fednuclei.data.tiles import Tile
from fednuclei.metrics import image_metrics, pixel_metrics
from fednuclei.model.inference import predict_probabilities
from fednuclei.model.postprocess import Postprocess, instances_from_probabilities

logger = logging.getLogger(__name__)


def segment_image(model: torch.nn.Module, image: np.ndarray, *, patch: int = 256, overlap: float = 0.25,
                  device=None, tta: bool = False, postprocess: Postprocess | None = None) -> np.ndarray:
    """Nuclei instances of a whole (H, W, 3) uint8 image at native resolution: (H, W) int32, 0 = background."""
    probs = predict_probabilities(model, image, patch=patch, overlap=overlap, device=device, tta=tta)
    return instances_from_probabilities(probs, postprocess)


def score_prediction(probs: np.ndarray, instances: np.ndarray, has_instances: bool,
                     postprocess: Postprocess | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """The predicted instances of one tile, from its (2, H, W) probabilities, and its metrics
    against the true ``instances`` (object metrics NaN unless ``has_instances``)."""
    predicted = instances_from_probabilities(probs, postprocess)
    return predicted, image_metrics(predicted, instances, has_instances)


def score_tiles(
    model_for: Callable[[Tile], torch.nn.Module],
    tiles: Sequence[Tile],
    *,
    patch: int = 256,
    overlap: float = 0.25,
    device=None,
    tta: bool = False,
    postprocess: Postprocess | None = None,
    workers: int | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Segment and score every tile: the model predicts one tile after another; the watershed
    and the metrics of each tile run in ``workers`` threads (default: one per CPU core) while
    the model goes on with the next tiles.

    Args:
        model_for: the model that segments a tile (one global model, or a tile's own client model).
        tiles: tiles with ground-truth instances.
        tta, postprocess: see :func:`segment_image`.
        workers: threads for the post-processing; 1 runs it in this thread.

    Returns:
        One row per tile (tile, client, organ, source, split, has_instances, n_true, n_predicted and
        every metric of :func:`fednuclei.metrics.image_metrics`; object metrics NaN where
        ``has_instances`` is False), and the predicted instance maps by tile name.
    """
    for tile in tiles:
        if tile.instances is None:
            raise ValueError(f"tile {tile.name} has no ground-truth instances to score against")
    workers = min(workers or os.cpu_count() or 1, max(len(tiles), 1))
    # Threads, not processes: scikit-image's watershed, SciPy's distance transform and NumPy
    # release the GIL, and a thread needs neither a start-up import nor copies of the arrays.
    pool = ThreadPoolExecutor(workers, thread_name_prefix="scoring") if workers > 1 else None
    try:
        pending = []
        # disable=None: a bar on a terminal, nothing in a log file
        for tile in tqdm(tiles, desc="scoring tiles", unit="tile", leave=False, disable=None):
            probs = predict_probabilities(model_for(tile), tile.image, patch=patch, overlap=overlap, device=device,
                                          tta=tta)
            arguments = (probs, tile.instances, tile.has_instances, postprocess)
            pending.append(pool.submit(score_prediction, *arguments) if pool else score_prediction(*arguments))
        results = [job.result() if pool else job for job in pending]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    rows, predictions = [], {}
    for tile, (predicted, metrics) in zip(tiles, results):
        predictions[tile.name] = predicted
        rows.append({"tile": tile.name, "client": tile.client, "organ": tile.organ, "source": tile.source,
                     "split": tile.split, "has_instances": tile.has_instances, "n_true": tile.n_nuclei,
                     "n_predicted": int(predicted.max()), **metrics})
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
