"""Pixel metrics of binary nuclei masks: Dice, IoU, precision, recall."""

from __future__ import annotations

import numpy as np

PIXEL_METRICS = ("dice", "iou", "pixel_precision", "pixel_recall")


def ratio(num: float, den: float) -> float:
    """``num / den``, 0.0 for 0/0 (callers return 1.0 earlier when both sides are empty)."""
    return float(num / den) if den else 0.0


def pixel_metrics(pred_mask: np.ndarray, true_mask: np.ndarray) -> dict[str, float]:
    """Overlap of a predicted and a true foreground mask.

    Args:
        pred_mask: (H, W) prediction, nonzero = foreground (bool, 0/1 or instance labels).
        true_mask: (H, W) ground truth, same convention.

    Returns:
        ``dice`` = 2|P∩T| / (|P| + |T|), ``iou`` = |P∩T| / |P∪T|, ``pixel_precision`` = |P∩T| / |P|,
        ``pixel_recall`` = |P∩T| / |T|, each in [0, 1]. All are 1.0 when both masks are empty;
        any other 0/0 is 0.0 (an empty prediction of a non-empty truth scores 0.0 everywhere).
    """
    check_same_shape(pred_mask, true_mask)
    pred, true = np.asarray(pred_mask) != 0, np.asarray(true_mask) != 0
    n_pred, n_true = int(pred.sum()), int(true.sum())
    if n_pred == 0 and n_true == 0:
        return dict.fromkeys(PIXEL_METRICS, 1.0)
    both = int(np.count_nonzero(pred & true))
    return {
        "dice": ratio(2 * both, n_pred + n_true),
        "iou": ratio(both, n_pred + n_true - both),
        "pixel_precision": ratio(both, n_pred),
        "pixel_recall": ratio(both, n_true),
    }


def check_same_shape(pred: np.ndarray, true: np.ndarray) -> None:
    if np.shape(pred) != np.shape(true):
        raise ValueError(f"prediction and truth differ in shape: {np.shape(pred)} vs {np.shape(true)}")
