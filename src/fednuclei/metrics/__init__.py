"""Segmentation metrics of nuclei: pixel overlap, AJI, panoptic quality, detection, and their summaries.

Per image, :func:`image_metrics` gives one flat dict of floats (keys :data:`METRICS`):

* pixel metrics of the binary masks (``instances > 0``): ``dice``, ``iou``, ``pixel_precision``,
  ``pixel_recall`` (:func:`pixel_metrics`);
* object metrics of the instance label maps: ``aji`` (Kumar et al. 2017), ``aji_plus`` (Graham et al.
  2019), ``pq``, ``dq``, ``sq`` (Kirillov et al. 2019, as in HoVer-Net) and detection ``f1``,
  ``object_precision``, ``object_recall`` at the same IoU > 0.5 matching (:func:`object_metrics`).

Object metrics come from one table of pairwise intersections (:func:`overlap_table`), built with a
single ``np.bincount``; labels may be any non-negative integers, contiguous or not (0 = background).
A 1000x1000 pair with ~700 nuclei takes a few tens of milliseconds.

Empty cases, one rule for every ratio: a metric is 1.0 when prediction and truth are both empty
(nothing to find, nothing found), and any other 0/0 is 0.0. For example an empty prediction of a
non-empty truth has precision 0.0 (as well as recall 0.0), and SQ is 0.0 when no pair is matched,
so that PQ = DQ x SQ always holds (HoVer-Net's ``get_fast_pq`` gives the same 0.0).

:func:`summarise` averages per-image rows by client, organ, ... (MoNuSeg reports AJI as the mean
of per-image AJIs, not as one AJI of all nuclei pooled; so does this module, for every metric).
"""

from __future__ import annotations

import math

import numpy as np

from fednuclei.metrics.objects import (
    OBJECT_METRICS,
    InstanceOverlap,
    aji,
    aji_plus,
    check_instances,
    detection_scores,
    object_metrics,
    overlap_table,
    panoptic_quality,
)
from fednuclei.metrics.pixel import PIXEL_METRICS, pixel_metrics
from fednuclei.metrics.summary import METRICS, summarise

__all__ = [
    "METRICS",
    "OBJECT_METRICS",
    "PIXEL_METRICS",
    "InstanceOverlap",
    "aji",
    "aji_plus",
    "detection_scores",
    "image_metrics",
    "object_metrics",
    "overlap_table",
    "panoptic_quality",
    "pixel_metrics",
    "summarise",
]


def image_metrics(pred_instances: np.ndarray, true_instances: np.ndarray, has_instances: bool) -> dict[str, float]:
    """All metrics of one image (keys :data:`METRICS`, in that order).

    Args:
        pred_instances: (H, W) integer labels, 0 = background.
        true_instances: (H, W) integer labels, 0 = background.
        has_instances: whether ``true_instances`` are exact nuclei. When False (connected components
            of a binary mask, where touching nuclei merge) the object metrics are NaN: they would
            score a correct split of touching nuclei as an error. Pixel metrics are always given.
    """
    check_instances(pred_instances, true_instances)
    metrics = pixel_metrics(pred_instances, true_instances)
    if not has_instances:
        return metrics | dict.fromkeys(OBJECT_METRICS, math.nan)
    return metrics | object_metrics(pred_instances, true_instances)
