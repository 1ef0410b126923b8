"""Predicted nuclei as GeoJSON for QuPath: one detection object per nucleus, outlined along pixel edges.

Coordinates are image pixels, x to the right and y down, with the origin at the top-left corner
of the top-left pixel: pixel ``(row, col)`` is the square ``[col, col+1] x [row, row+1]``, as in
QuPath and in :mod:`fednuclei.data.polygons`. Outlines follow the pixel edges of each nucleus, so
a polygon's area is exactly the nucleus's pixel count and rasterising it back (a pixel belongs
when its centre is inside) gives the label map again.

Each nucleus is one feature:

* geometry: a ``Polygon`` (outer ring, then one ring per hole), or a ``MultiPolygon`` when its
  pixels form several 4-connected parts (a watershed can leave a nucleus in pieces; it stays
  one object, so the count of objects is the count of nuclei);
* properties, as QuPath (0.4 and later) reads them: ``objectType: detection``, a
  ``classification`` (name and RGB colour) and ``measurements``: the label in the instance map,
  the area in pixels and the mean foreground probability over the nucleus.

Rings are closed (first position repeated last), outer rings counter-clockwise in the (x, y)
numbers and holes clockwise, as RFC 7946 asks; only the corners of the outline are kept.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
from scipy import ndimage

from fednuclei.atomic import atomic_file

CLASSIFICATION = {"name": "Nucleus", "color": [0, 255, 0]}  # green, as the outlines of the overlays
# 4-connectivity, as the post-processing separates nuclei: pixels touching only at a corner are apart
_FOUR = ndimage.generate_binary_structure(2, 1)
# A pixel's four edges, keyed by the (row, col) offset of the neighbour across each: its (start,
# end) corners as (x, y) offsets from the pixel's top-left corner, directed so that the pixel lies
# to the right when walking along (y down). Outer rings then come out counter-clockwise in the
# (x, y) numbers, holes clockwise.
_EDGES = {
    (-1, 0): ((0, 0), (1, 0)),  # top
    (0, 1): ((1, 0), (1, 1)),   # right
    (1, 0): ((1, 1), (0, 1)),   # bottom
    (0, -1): ((0, 1), (0, 0)),  # left
}


def nuclei_features(instances: np.ndarray, foreground: np.ndarray) -> dict:
    """The GeoJSON FeatureCollection of an instance label map.

    Args:
        instances: (H, W) integer labels, 0 = background, one positive label per nucleus.
        foreground: (H, W) foreground probabilities in [0, 1] (channel 0 of
            :func:`fednuclei.model.inference.predict_probabilities`).

    Returns:
        ``{"type": "FeatureCollection", "features": [...]}``, one feature per label, by increasing label.

    Raises:
        ValueError: shapes differ, labels are negative or not integers.
    """
    if instances.ndim != 2 or instances.shape != foreground.shape:
        raise ValueError(f"instances {instances.shape} and foreground {foreground.shape} must be the same (H, W)")
    if not np.issubdtype(instances.dtype, np.integer) or (instances.size and instances.min() < 0):
        raise ValueError(f"instances must be non-negative integer labels, got {instances.dtype}")
    labels = np.unique(instances[instances > 0])
    means = ndimage.mean(foreground, instances, labels) if labels.size else []
    boxes = ndimage.find_objects(instances)
    features = []
    for label, mean in zip(labels, means):
        rows, cols = boxes[label - 1]
        mask = instances[rows, cols] == label
        polygons = [[[(x + cols.start, y + rows.start) for x, y in ring] for ring in polygon]
                    for polygon in mask_polygons(mask)]
        geometry = ({"type": "Polygon", "coordinates": polygons[0]} if len(polygons) == 1
                    else {"type": "MultiPolygon", "coordinates": polygons})
        measurements = {"Label": int(label), "Area px^2": int(mask.sum()), "Foreground probability mean": float(mean)}
        features.append({
            "type": "Feature",
            "geometry": geometry,
            "properties": {"objectType": "detection", "classification": CLASSIFICATION, "measurements": measurements},
        })
    return {"type": "FeatureCollection", "features": features}


def write_geojson(collection: dict, path: str | os.PathLike) -> None:
    """Write a FeatureCollection as compact JSON, atomically."""
    with atomic_file(path) as staging:
        staging.write_text(json.dumps(collection, separators=(",", ":")))


def mask_polygons(mask: np.ndarray) -> list[list[list[tuple[int, int]]]]:
    """The outline of a binary mask along pixel edges: one polygon per 4-connected part.

    Args:
        mask: (H, W) bool.

    Returns:
        polygons, each a list of closed rings of integer ``(x, y)`` corners: the outer ring first,
        then the holes (a hole may touch the outer ring at one corner, where two pixels of the
        part meet diagonally).
    """
    parts, count = ndimage.label(mask, structure=_FOUR)
    polygons = []
    for part in range(1, count + 1):
        rings = sorted(_rings(parts == part), key=_signed_area, reverse=True)  # the outer ring has the largest
        polygons.append(rings)
    return polygons


def _rings(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Every closed boundary of ``mask`` (one 4-connected part), as corner lists."""
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    outgoing: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for (dr, dc), ((x0, y0), (x1, y1)) in _EDGES.items():
        rows, cols = np.nonzero(inside & ~padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc])
        for row, col in zip(rows.tolist(), cols.tolist()):
            outgoing[(col + x0, row + y0)].append((col + x1, row + y1))
    rings = []
    while outgoing:
        corner = next(iter(outgoing))
        first = edge = (corner, outgoing[corner][0])
        ring = [corner]
        # The first edge stays available until the walk would take it again: the ring is then closed.
        while (edge := (edge[1], _next_corner(outgoing, *edge))) != first:
            _take(outgoing, edge)
            ring.append(edge[0])
        _take(outgoing, first)
        rings.append(_corners_only(ring))
    return rings


def _next_corner(outgoing: dict, previous: tuple[int, int], corner: tuple[int, int]) -> tuple[int, int]:
    """Where the boundary goes on from ``corner``, reached from ``previous``. Two edges leave a
    corner where two pixels of the part meet diagonally; the walk turns left there, to the other
    pixel, so that a hole touching the outline at that corner stays a ring of its own."""
    candidates = outgoing[corner]
    if len(candidates) == 1:
        return candidates[0]
    heading = (corner[0] - previous[0], corner[1] - previous[1])
    return corner[0] + heading[1], corner[1] - heading[0]  # of the two, the left turn (y pointing down)


def _take(outgoing: dict, edge: tuple[tuple[int, int], tuple[int, int]]) -> None:
    start, end = edge
    outgoing[start].remove(end)
    if not outgoing[start]:
        del outgoing[start]


def _corners_only(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop the points where the ring goes straight on, and close it (first corner repeated)."""
    kept = [point for i, point in enumerate(ring)
            if _turns(ring[i - 1], point, ring[(i + 1) % len(ring)])]
    return kept + kept[:1]


def _turns(before: tuple[int, int], point: tuple[int, int], after: tuple[int, int]) -> bool:
    return (point[0] - before[0]) * (after[1] - point[1]) != (point[1] - before[1]) * (after[0] - point[0])


def _signed_area(ring: list[tuple[int, int]]) -> float:
    """Shoelace area of a closed ring: positive for counter-clockwise (x, y) numbers."""
    xy = np.asarray(ring, dtype=np.float64)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))
