"""Weak labels derived from instance masks: one box and one point per nucleus."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def boxes_from_instances(instances: np.ndarray) -> np.ndarray:
    """Tight box of every nucleus.

    Args:
        instances: (H, W) integer labels, 0 = background.

    Returns:
        (N, 4) float32 ``x0, y0, x1, y1`` in pixel edges (x1, y1 exclusive), ordered by label.
    """
    labels = np.unique(instances[instances > 0])
    slices = ndimage.find_objects(instances.astype(np.int64))
    boxes = [
        (s[1].start, s[0].start, s[1].stop, s[0].stop)
        for label in labels
        if (s := slices[label - 1]) is not None
    ]
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def points_from_instances(instances: np.ndarray) -> np.ndarray:
    """One point per nucleus: its pixel nearest to the centroid.

    The centroid of a concave nucleus can fall outside it; the nearest pixel never does.

    Args:
        instances: (H, W) integer labels, 0 = background.

    Returns:
        (N, 2) float32 ``x, y`` pixel coordinates, ordered by label.
    """
    labels = np.unique(instances[instances > 0])
    if len(labels) == 0:
        return np.zeros((0, 2), np.float32)
    ys, xs = np.nonzero(instances)
    owner = instances[ys, xs]
    order = np.argsort(owner, kind="stable")
    ys, xs, owner = ys[order], xs[order], owner[order]
    starts = np.searchsorted(owner, labels)
    counts = np.diff(np.append(starts, len(owner)))
    cy = np.add.reduceat(ys, starts) / counts
    cx = np.add.reduceat(xs, starts) / counts
    dist = (ys - np.repeat(cy, counts)) ** 2 + (xs - np.repeat(cx, counts)) ** 2
    points = np.empty((len(labels), 2), np.float32)
    for i, (start, count) in enumerate(zip(starts, counts)):
        nearest = start + int(np.argmin(dist[start : start + count]))
        points[i] = xs[nearest], ys[nearest]
    return points
