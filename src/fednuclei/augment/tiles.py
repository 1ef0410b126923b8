"""Augmented copies of tiles, with their instance maps, boxes and points kept aligned."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import albumentations as A
import numpy as np

from fednuclei.augment.compose import BOX_IDS, POINT_IDS, build_transform, seed_transform
from fednuclei.augment.recipe import AugmentationRecipe
from fednuclei.data.tiles import Tile
from fednuclei.data.weak_labels import boxes_from_instances, points_from_instances


def augment_tile(tile: Tile, transform: A.Compose, copy_index: int, seed: int | None = None) -> Tile:
    """One augmented copy of ``tile``.

    Args:
        tile: the original; not modified.
        transform: from :func:`build_transform`.
        copy_index: names the copy ``f"{tile.name}_aug{copy_index}"``.
        seed: when given, ``transform`` is first reseeded from ``(seed, tile.name, copy_index)`` so
            the copy is reproducible on its own; otherwise the transform's current state is used.

    Returns:
        A new Tile with the same metadata, ``extra["augmented_from"] = tile.name``, and the same kinds
        of labels as ``tile`` (see the module docstring for how each kind is transformed). Boxes are
        float32 ``x0, y0, x1, y1`` pixel edges inside the image; points are float32 integer pixel
        ``x, y``. When a weak tile has as many boxes as points they are taken as pairs (nucleus i has
        box i and point i) and a nucleus is kept only if both its box and its point survive.
    """
    if seed is not None:
        seed_transform(transform, _copy_seed(seed, tile.name, copy_index))
    image = np.ascontiguousarray(tile.image, dtype=np.uint8)
    boxes = _as_array(tile.boxes, 4)
    points = _as_array(tile.points, 2)
    moves_labels = "bboxes" in transform.processors and "keypoints" in transform.processors
    if not moves_labels and _moves_pixels(transform):
        raise ValueError("transform has geometric steps but no bbox_params/keypoint_params; use build_transform")
    data: dict[str, Any] = {"image": image}
    if tile.instances is not None:
        data["mask"] = _mask_dtype(tile.instances)
        if moves_labels:  # the processors need their fields even when there is nothing to move
            data |= _label_data(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32))
        out = transform(**data)
        instances = _relabel(np.asarray(out["mask"]))
        new_boxes = boxes_from_instances(instances) if tile.boxes is not None else None
        new_points = points_from_instances(instances) if tile.points is not None else None
    elif not moves_labels:  # colour only: labels stay where they are
        out = transform(**data)
        instances, new_boxes, new_points = None, boxes.copy(), points.copy()
    else:
        instances = None
        out = transform(**data, **_label_data(boxes, points))
        new_boxes, new_points = _moved_weak_labels(out, pairs=tile.boxes is not None and tile.points is not None
                                                   and len(boxes) == len(points))
    if instances is None:
        new_boxes = new_boxes if tile.boxes is not None else None
        new_points = new_points if tile.points is not None else None
    return replace(
        tile,
        name=f"{tile.name}_aug{copy_index}",
        image=np.ascontiguousarray(out["image"], dtype=np.uint8),
        instances=instances,
        boxes=None if new_boxes is None else new_boxes.astype(np.float32),
        points=None if new_points is None else new_points.astype(np.float32),
        extra={**tile.extra, "augmented_from": tile.name},
    )


def _moved_weak_labels(out: dict[str, Any], pairs: bool) -> tuple[np.ndarray, np.ndarray]:
    """The boxes and points albumentations moved, in their original order, clipped to the image;
    with ``pairs`` (box i and point i are one nucleus), a nucleus stays only with both."""
    height, width = out["image"].shape[:2]
    new_boxes = _columns(out["bboxes"], 4)
    new_points = np.rint(_columns(out["keypoints"], 2))
    np.clip(new_points[:, 0], 0, width - 1, out=new_points[:, 0])
    np.clip(new_points[:, 1], 0, height - 1, out=new_points[:, 1])
    box_ids = np.asarray(out[BOX_IDS], np.int64).reshape(-1)
    point_ids = np.asarray(out[POINT_IDS], np.int64).reshape(-1)
    new_boxes, box_ids = new_boxes[np.argsort(box_ids, kind="stable")], np.sort(box_ids)
    new_points, point_ids = new_points[np.argsort(point_ids, kind="stable")], np.sort(point_ids)
    if pairs:
        both = np.intersect1d(box_ids, point_ids)  # keep nucleus i only with both its box and point
        new_boxes = new_boxes[np.isin(box_ids, both)]
        new_points = new_points[np.isin(point_ids, both)]
    return new_boxes, new_points


def augment_tiles(
    tiles: Iterable[Tile],
    copies: int,
    seed: int,
    recipe: AugmentationRecipe | Mapping[str, Any] | None = None,
) -> list[Tile]:
    """``copies`` augmented copies of every tile (originals not included).

    Copy ``k`` of tile ``t`` depends only on ``(seed, t.name, k, recipe, t)``: the same seed gives
    identical output, and the result for a tile does not depend on the other tiles or their order.
    Output order is tile by tile, copies ``0..copies-1``.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    transform = build_transform(recipe)
    return [augment_tile(tile, transform, k, seed=seed) for tile in tiles for k in range(copies)]


def _columns(values: Any, width: int) -> np.ndarray:
    """First ``width`` columns of albumentations' bboxes / keypoints output as float32 (N, width)."""
    array = np.asarray(values, np.float32)
    return array.reshape(len(array), -1)[:, :width] if len(array) else np.zeros((0, width), np.float32)


def _label_data(boxes: np.ndarray, points: np.ndarray) -> dict[str, Any]:
    return {"bboxes": boxes, BOX_IDS: np.arange(len(boxes)), "keypoints": points, POINT_IDS: np.arange(len(points))}


def _moves_pixels(transform: A.BaseCompose) -> bool:
    for step in transform.transforms:
        if isinstance(step, A.DualTransform) or (isinstance(step, A.BaseCompose) and _moves_pixels(step)):
            return True
    return False


def _as_array(labels: np.ndarray | None, width: int) -> np.ndarray:
    if labels is None:
        return np.zeros((0, width), np.float32)
    return np.asarray(labels, np.float32).reshape(-1, width)


def _mask_dtype(instances: np.ndarray) -> np.ndarray:
    """Instance map in a dtype every albumentations/cv2 path handles exactly."""
    top = int(instances.max(initial=0))
    if int(instances.min(initial=0)) < 0:
        raise ValueError("instance labels must be >= 0")
    if top <= np.iinfo(np.uint16).max:
        return np.ascontiguousarray(instances, dtype=np.uint16)
    if top <= 2**24:
        return np.ascontiguousarray(instances, dtype=np.float32)
    raise ValueError(f"instance label {top} too large to transform exactly (max 2**24)")


def _relabel(mask: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..N keeping their order; 0 stays background."""
    labels = np.rint(mask).astype(np.int64) if mask.dtype.kind == "f" else mask.astype(np.int64)
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    lookup = np.zeros(len(present), np.int32)
    lookup[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lookup[labels]


def _copy_seed(seed: int, name: str, copy_index: int) -> tuple[int, int, int]:
    return (int(seed) % 2**64, zlib.crc32(name.encode("utf-8")), int(copy_index))
