"""Everything drawn for people: tiles with their labels, prediction overlays, report figures.

Images are (H, W, 3) uint8 RGB arrays; figures are headless matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are drawn on servers without a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from PIL import Image
from skimage.draw import disk
from skimage.measure import block_reduce
from skimage.segmentation import find_boundaries

from fednuclei.data.tiles import Tile

HEADLINE_METRICS = ["dice", "aji", "pq"]

_OUTLINE = np.array([0, 255, 0], np.uint8)
_BOX = np.array([255, 255, 0], np.uint8)
_POINT = np.array([0, 255, 255], np.uint8)
_SHEET_BACKGROUND = np.array([40, 40, 40], np.uint8)


def overlay(image: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 copy of ``image`` with each predicted nucleus outlined in green."""
    drawn = image.copy()
    drawn[find_boundaries(instances, mode="inner")] = _OUTLINE
    return drawn


def score_bars(means: pd.DataFrame, title: str) -> plt.Figure:
    """Grouped bars: one group per row of ``means`` (a client, a method), one bar per metric column, in [0, 1]."""
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(means)), 4))
    means.plot.bar(ax=axis, rot=0)
    axis.set(ylabel="mean over test tiles", ylim=(0, 1), title=title)
    axis.legend(ncols=len(means.columns), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    figure.tight_layout()
    return figure


def before_after_bars(table: pd.DataFrame, labels: list[str], metric: str = "dice") -> plt.Figure:
    """Per client (old, then new, then the overall rows), ``metric`` of each model in ``labels``
    (columns ``<metric>_<label>`` of :func:`fednuclei.metrics.transfer.before_after`)."""
    means = table.set_index("client")[[f"{metric}_{label}" for label in labels]]
    means.columns = labels
    figure = score_bars(means, f"test {metric} per client, before and after the incremental stage")
    figure.axes[0].set_ylabel(f"mean test {metric}")
    return figure


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Training loss and validation Dice per round; one line per ``run`` column value (local training)."""
    figure, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(10, 4))
    runs = history.groupby("run") if "run" in history else [("global", history)]
    for name, rows in runs:
        loss_axis.plot(rows["round"], rows["train_loss"], marker="o", label=name)
        dice_axis.plot(rows["round"], rows["val_dice"], marker="o", label=name)
    loss_axis.set(xlabel="round", ylabel="training loss (Dice + BCE)", title="training loss")
    dice_axis.set(xlabel="round", ylabel="validation Dice", title="validation Dice", ylim=(0, 1))
    return _by_round(figure, (loss_axis, dice_axis))


def client_rounds(history: pd.DataFrame) -> plt.Figure:
    """Per client over the rounds of a federated run: its share of the aggregate and the images it
    trained on (FedMix: the weak clients' pseudo-labelled images that passed its filters), from
    the history's ``clients.<name>.weight`` and ``clients.<name>.usable_images`` columns."""
    figure, (weight_axis, usable_axis) = plt.subplots(1, 2, figsize=(10, 4))
    clients = [column.split(".")[1] for column in history if column.startswith("clients.") and column.endswith(".weight")]
    for client in clients:
        weight_axis.plot(history["round"], history[f"clients.{client}.weight"], marker="o", label=client)
        usable_axis.plot(history["round"], history[f"clients.{client}.usable_images"], marker="o", label=client)
    weight_axis.set(xlabel="round", ylabel="weight in the aggregate", title="aggregation weights", ylim=(0, 1))
    usable_axis.set(xlabel="round", ylabel="training images used", title="usable images per client")
    return _by_round(figure, (weight_axis, usable_axis))


def _by_round(figure: plt.Figure, axes: tuple[plt.Axes, ...]) -> plt.Figure:
    """Whole rounds on each x axis, the legend on the last panel."""
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].legend(fontsize="small")
    figure.tight_layout()
    return figure


def cross_site_heatmap(matrix: pd.DataFrame) -> plt.Figure:
    """Test Dice of each client's model (rows, column ``model``) on each client's test tiles (the
    other columns), as a heatmap with its values."""
    scores = matrix.set_index("model")
    figure, axis = plt.subplots(figsize=(1.2 * len(scores.columns) + 2.5, 0.8 * len(scores) + 1.8))
    shown = axis.imshow(scores.to_numpy(float), vmin=0, vmax=1, cmap="viridis")
    axis.set_xticks(range(len(scores.columns)), scores.columns, rotation=30, ha="right")
    axis.set_yticks(range(len(scores)), scores.index)
    for (row, column), value in np.ndenumerate(scores.to_numpy(float)):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    axis.set(xlabel="test tiles of", ylabel="model of", title="cross-site test Dice (local models)")
    figure.colorbar(shown, ax=axis, fraction=0.05)
    figure.tight_layout()
    return figure


def best_and_worst(picks: Sequence[tuple[str, Tile, np.ndarray]]) -> plt.Figure:
    """One row per ``(title, tile, predicted instances)``: the tile, its ground truth outlined and
    the prediction outlined."""
    figure, axes = plt.subplots(len(picks), 3, figsize=(9, 3 * len(picks)), squeeze=False)
    for row, (title, tile, predicted) in zip(axes, picks):
        for axis, (label, image) in zip(row, (("image", tile.image), ("ground truth", overlay(tile.image, tile.instances)),
                                              ("prediction", overlay(tile.image, predicted)))):
            axis.imshow(image)
            axis.set_title(f"{title}: {label}" if label == "image" else label, fontsize="small")
            axis.axis("off")
    figure.tight_layout()
    return figure


def contact_sheet(
    originals: Sequence[Tile],
    augmented: Sequence[Tile],
    path: str | Path | None = None,
    max_tiles: int = 6,
    copies_shown: int = 3,
    cell_size: int = 256,
    gap: int = 4,
) -> np.ndarray:
    """Grid of originals (first column) beside their augmented copies, labels drawn on top.

    Row ``i`` shows ``originals[i]`` and the first ``copies_shown`` tiles of ``augmented`` whose
    ``extra["augmented_from"]`` is its name (missing copies stay blank). Instances are drawn as green
    outlines; tiles without instances get yellow boxes and cyan dots for points. Each tile is scaled to
    fit a ``cell_size`` square.

    Args:
        originals: tiles as they were; the first ``max_tiles`` are shown.
        augmented: output of :func:`fednuclei.augment.augment_tiles`.
        path: if given, the sheet is also written there as PNG.

    Returns:
        (rows * (cell_size + gap) + gap, (1 + copies_shown) * (cell_size + gap) + gap, 3) uint8 RGB,
        with ``rows = min(len(originals), max_tiles)``.
    """
    rows = originals[:max_tiles]
    columns = 1 + copies_shown
    sheet = np.empty((len(rows) * (cell_size + gap) + gap, columns * (cell_size + gap) + gap, 3), np.uint8)
    sheet[:] = _SHEET_BACKGROUND
    copies: dict[str, list[Tile]] = {}
    for tile in augmented:
        copies.setdefault(tile.extra.get("augmented_from", ""), []).append(tile)
    for r, original in enumerate(rows):
        shown = [original, *copies.get(original.name, [])[:copies_shown]]
        for c, tile in enumerate(shown):
            cell = _draw_tile(tile, cell_size)
            top, left = gap + r * (cell_size + gap), gap + c * (cell_size + gap)
            sheet[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(path)
    return sheet


def _draw_tile(tile: Tile, cell_size: int) -> np.ndarray:
    """Tile scaled to fit ``cell_size`` with its labels drawn."""
    height, width = tile.image.shape[:2]
    scale = cell_size / max(height, width)
    out_h, out_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    factor = int(1 / scale) if scale < 1 else 1
    image = tile.image
    if factor > 1:  # box-average before nearest sampling, so downscaling does not alias
        image = block_reduce(image, (factor, factor, 1), np.mean).astype(np.uint8)
    cell = _resample_nearest(image, out_h, out_w).copy()
    if tile.instances is not None:
        outline = find_boundaries(tile.instances, mode="inner")
        if factor > 1:
            outline = block_reduce(outline, (factor, factor), np.max)
        cell[_resample_nearest(outline, out_h, out_w)] = _OUTLINE
        return cell
    thickness = max(1, cell_size // 200)
    if tile.boxes is not None:
        for x0, y0, x1, y1 in np.asarray(tile.boxes, np.float64).reshape(-1, 4) * scale:
            c0, c1 = int(np.clip(np.floor(x0), 0, out_w - 1)), int(np.clip(np.ceil(x1) - 1, 0, out_w - 1))
            r0, r1 = int(np.clip(np.floor(y0), 0, out_h - 1)), int(np.clip(np.ceil(y1) - 1, 0, out_h - 1))
            cell[r0 : r0 + thickness, c0 : c1 + 1] = _BOX
            cell[max(r1 - thickness + 1, 0) : r1 + 1, c0 : c1 + 1] = _BOX
            cell[r0 : r1 + 1, c0 : c0 + thickness] = _BOX
            cell[r0 : r1 + 1, max(c1 - thickness + 1, 0) : c1 + 1] = _BOX
    if tile.points is not None:
        radius = max(1.5, cell_size / 128)
        for x, y in (np.asarray(tile.points, np.float64).reshape(-1, 2) + 0.5) * scale:
            rr, cc = disk((y, x), radius, shape=cell.shape[:2])
            cell[rr, cc] = _POINT
    return cell


def _resample_nearest(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    rows = np.minimum(((np.arange(out_h) + 0.5) * array.shape[0] / out_h).astype(int), array.shape[0] - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * array.shape[1] / out_w).astype(int), array.shape[1] - 1)
    return array[rows[:, None], cols[None, :]]
