"""MoNuSeg's polygon annotations: Aperio ImageScope XML, one ``<Region>`` per nucleus, and their
rasterisation into an instance map.

Rasterisation rule (:func:`rasterize_polygons`):

* Coordinates: a vertex ``(X, Y)`` is a point in continuous image coordinates whose origin is
  the top-left corner of the top-left pixel, so pixel ``(row, col)`` spans ``[col, col+1) x
  [row, row+1)``. A pixel belongs to a polygon when its centre ``(col + 0.5, row + 0.5)`` lies
  inside it. This makes the pixel count an unbiased estimate of the polygon area: drawing the
  vertices as pixel centres instead inflates every nucleus by about half its perimeter (+11 %
  area on TCGA-B0-5710, whose vertices are integers).
* Overlaps: polygons are drawn in order of decreasing area (ties: input order), so where two
  overlap the smaller one wins and small nuclei are not swallowed by large ones; every polygon
  not fully covered by smaller ones keeps its pixels outside the overlap.
* A polygon of positive area that covers no pixel centre (a sliver) gets the one pixel holding
  its vertex mean, so it is not lost.
* A polygon left with no pixel (covered entirely by smaller polygons drawn after it, e.g. an
  exact duplicate; or lying outside the image) is dropped. Survivors are relabelled 1..N in input
  order. On the 13 MoNuSeg training tiles with XML: 4951 regions, 2 degenerate, 0 dropped by
  rasterisation.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from skimage.draw import polygon as _draw_polygon

#: Vertices may stray a little outside the tile (up to 3 px in the training XML); beyond this the
#: annotation cannot belong to the image.
EXTENT_TOLERANCE_PX = 8.0


def polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area of a closed polygon given as (K, 2) x, y vertices."""
    if len(vertices) < 3:
        return 0.0
    v = np.asarray(vertices, dtype=np.float64)
    x, y = (v - v.mean(axis=0)).T  # centred: no cancellation on large coordinates
    twice = x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]
    return float(0.5 * abs(twice))


class _RegionCollector:
    """``XMLParser`` target that keeps only the Region ids and Vertex coordinates (no tree: 3x faster)."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.regions: list[tuple[str | None, list]] = []
        self._current: list | None = None

    def start(self, tag: str, attrib: dict) -> None:
        if self.root is None:
            self.root = tag
        if tag == "Vertex":
            if self._current is not None:
                self._current.append(attrib.get("X"))
                self._current.append(attrib.get("Y"))
        elif tag == "Region":
            self._current = []
            self.regions.append((attrib.get("Id"), self._current))

    def close(self) -> "_RegionCollector":
        return self


def parse_regions(path: Path) -> tuple[list[np.ndarray], int]:
    """All non-degenerate polygons of an annotation file and the number of regions it has."""
    parser = ElementTree.XMLParser(target=_RegionCollector())
    try:
        with open(path, "rb") as handle:
            parser.feed(handle.read())
        collected = parser.close()
    except ElementTree.ParseError as exc:
        raise ValueError(f"annotation file {path} does not parse as XML ({exc})") from exc
    if collected.root != "Annotations":
        raise ValueError(
            f"annotation file {path} is not a MoNuSeg/ImageScope annotation: "
            f"root element is <{collected.root}>, expected <Annotations>"
        )
    polygons = []
    for region_id, coords in collected.regions:
        try:
            vertices = np.array(coords, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"annotation file {path}: region Id={region_id} has a vertex without numeric X/Y ({exc})"
            ) from exc
        if len(vertices) < 3 or not np.isfinite(vertices).all() or polygon_area(vertices) <= 1e-9:
            continue
        polygons.append(vertices)
    n_regions = len(collected.regions)
    if n_regions and not polygons:
        raise ValueError(
            f"annotation file {path}: all {n_regions} regions are degenerate "
            "(fewer than 3 vertices or zero area); no nucleus polygon left"
        )
    return polygons, n_regions


def parse_monuseg_xml(path: str | os.PathLike) -> list[np.ndarray]:
    """Nucleus polygons of a MoNuSeg (Aperio ImageScope) XML file.

    Returns:
        one (K, 2) float64 array of ``x, y`` vertices per ``<Region>``, in file order, without
        the degenerate ones (fewer than 3 vertices, zero area or non-finite coordinates).
        A file with no regions gives an empty list.

    Raises:
        ValueError: the file does not parse, is not an ``<Annotations>`` file, has a vertex
            without numeric coordinates, or has regions that are all degenerate (naming the file).
    """
    return parse_regions(Path(path))[0]


def rasterize_polygons(
    polygons: list[np.ndarray], shape: tuple[int, int], *, return_kept: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Instance label map of nucleus polygons (rules in the module docstring).

    Args:
        polygons: (K, 2) ``x, y`` vertex arrays.
        shape: (H, W) of the image.
        return_kept: also return the input indices of the polygons that kept pixels.

    Returns:
        (H, W) int32 labels, 0 = background, 1..N for the N polygons that kept at least one
        pixel, numbered in input order (label ``k`` is polygon ``kept[k - 1]``); with
        ``return_kept``, also the (N,) int64 array ``kept``.
    """
    height, width = int(shape[0]), int(shape[1])
    n = len(polygons)
    areas = [polygon_area(p) for p in polygons]
    order = sorted(range(n), key=lambda i: (-areas[i], i))
    labels = np.zeros((height, width), np.int32)
    for i in order:
        vertices = np.asarray(polygons[i], dtype=np.float64)
        rows, cols = _draw_polygon(vertices[:, 1] - 0.5, vertices[:, 0] - 0.5, (height, width))
        if rows.size == 0 and areas[i] > 0:
            cx, cy = vertices.mean(axis=0)
            r, c = int(np.floor(cy)), int(np.floor(cx))
            if 0 <= r < height and 0 <= c < width:
                rows, cols = np.array([r]), np.array([c])
        labels[rows, cols] = i + 1
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    kept = np.flatnonzero(counts[1:] > 0)
    lut = np.zeros(n + 1, np.int32)
    lut[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    labels = lut[labels]
    return (labels, kept) if return_kept else labels


def check_extent(polygons: list[np.ndarray], image_shape: tuple, xml: Path, image: Path) -> None:
    if not polygons:
        return
    allv = np.concatenate(polygons)
    (x0, y0), (x1, y1) = allv.min(axis=0), allv.max(axis=0)
    height, width = image_shape[:2]
    tol = EXTENT_TOLERANCE_PX
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise ValueError(
            f"annotation {xml} does not fit its image {image}: image is {width}x{height} (WxH) "
            f"but the polygons span x {x0:.1f}..{x1:.1f}, y {y0:.1f}..{y1:.1f}"
        )
