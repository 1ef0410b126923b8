"""Instances from foreground and contour probabilities: marker-controlled watershed.

Three ways to find one marker per nucleus (:data:`WATERSHEDS`):

* ``contour``: the nucleus cores, foreground minus contour. Strong when the contour channel is
  well trained; when it is weak, touching nuclei share one core and stay merged.
* ``distance``: peaks of the foreground's Euclidean distance transform. Needs no contour, but
  splits elongated nuclei and misses touching nuclei with a wide contact.
* ``blend``: peaks of the cores' distance transform: the contour separates where it can, and
  distance peaks still split cores that a weak contour left touching.

The nuclei then grow from their markers over the foreground (a watershed of the contour map for
``contour``, of the negated distance otherwise). Foreground components no marker reached become
instances of their own, and objects under ``min_size`` px are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from fednuclei.run_settings import RunSettings

# 4-connectivity: nuclei that touch only at a corner stay apart
_FOUR = ndimage.generate_binary_structure(2, 1)
WATERSHEDS = ("contour", "distance", "blend")
# A distance peak must stand this many pixels above its surroundings to be a nucleus of its own.
_PEAK_HEIGHT = 1.0


@dataclass(frozen=True)
class Postprocess:
    """How probabilities become instances (:meth:`of` a run's settings).

    Attributes:
        watershed: one of :data:`WATERSHEDS`.
        foreground_threshold, contour_threshold: probability thresholds, in (0, 1).
        min_size: objects under this many pixels are dropped.
        min_marker_size: markers under this many pixels are dropped (contour noise would
            otherwise split a nucleus).
    """

    watershed: str
    foreground_threshold: float
    contour_threshold: float
    min_size: int = 10
    min_marker_size: int = 3

    def __post_init__(self) -> None:
        if self.watershed not in WATERSHEDS:
            raise ValueError(f"watershed must be one of {WATERSHEDS}, got {self.watershed!r}")

    @classmethod
    def of(cls, settings: RunSettings) -> Postprocess:
        return cls(watershed=settings.watershed, foreground_threshold=settings.foreground_threshold,
                   contour_threshold=settings.contour_threshold)


def instances_from_probabilities(probs: np.ndarray, postprocess: Postprocess | None = None, *,
                                 min_size: int | None = None) -> np.ndarray:
    """Nuclei instances from the model's probabilities.

    Args:
        probs: (2, H, W) float in [0, 1]: foreground, contour.
        postprocess: the watershed and its thresholds (default: those of the run settings' defaults).
        min_size: overrides ``postprocess.min_size``.

    Returns:
        (H, W) int32 instance labels, 0 = background, numbered 1..N.
    """
    if probs.ndim != 3 or probs.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) foreground and contour probabilities, got shape {probs.shape}")
    postprocess = postprocess or Postprocess.of(RunSettings())
    foreground = probs[0] > postprocess.foreground_threshold
    contour = probs[1].astype(np.float32)
    cores = foreground & (contour < postprocess.contour_threshold)
    if postprocess.watershed == "contour":
        markers, _ = ndimage.label(cores, structure=_FOUR)
        markers = _drop_small(markers, postprocess.min_marker_size)
        labels = watershed(contour, markers, mask=foreground, connectivity=1)
    else:
        peaks_of = foreground if postprocess.watershed == "distance" else cores
        peaks = h_maxima(ndimage.gaussian_filter(ndimage.distance_transform_edt(peaks_of), 1.0), _PEAK_HEIGHT)
        markers, _ = ndimage.label(peaks & peaks_of, structure=_FOUR)
        labels = watershed(-ndimage.distance_transform_edt(foreground), markers, mask=foreground, connectivity=1)
    orphans, _ = ndimage.label(foreground & (labels == 0), structure=_FOUR)
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    labels = _drop_small(labels, postprocess.min_size if min_size is None else min_size)
    return relabel_sequential(labels)[0].astype(np.int32)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with the objects of fewer than ``min_size`` pixels set to 0 (a copy)."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)
