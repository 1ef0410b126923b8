"""Instances from foreground and contour probabilities: marker-controlled watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential, watershed

# 4-connectivity: nuclei that touch only at a corner stay apart
_FOUR = ndimage.generate_binary_structure(2, 1)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with the objects of fewer than ``min_size`` pixels set to 0 (a copy)."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def instances_from_probabilities(
    probs: np.ndarray,
    *,
    foreground_threshold: float = 0.5,
    contour_threshold: float = 0.5,
    min_size: int = 10,
    min_marker_size: int = 3,
) -> np.ndarray:
    """Nuclei instances from the model's probabilities.

    1. Markers: 4-connected components of ``(fg > foreground_threshold) & (contour <
       contour_threshold)``, the nucleus cores; those under ``min_marker_size`` px are dropped
       (contour noise would otherwise split a nucleus).
    2. Watershed of the contour map from the markers within the foreground mask: cores grow back
       over their contour ring and meet on the contour ridge between touching nuclei.
    3. Foreground components that no marker reached (nuclei so small the contour covers them) become
       instances of their own.
    4. Objects under ``min_size`` px are removed; labels are renumbered 1..N.

    Args:
        probs: (2, H, W) float in [0, 1]: foreground, contour.

    Returns:
        (H, W) int32 instance labels, 0 = background.
    """
    if probs.ndim != 3 or probs.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) foreground and contour probabilities, got shape {probs.shape}")
    foreground = probs[0] > foreground_threshold
    contour = probs[1].astype(np.float32)
    markers, _ = ndimage.label(foreground & (contour < contour_threshold), structure=_FOUR)
    markers = _drop_small(markers, min_marker_size)
    labels = watershed(contour, markers, mask=foreground, connectivity=1)
    orphans, _ = ndimage.label(foreground & (labels == 0), structure=_FOUR)
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    labels = _drop_small(labels, min_size)
    return relabel_sequential(labels)[0].astype(np.int32)
