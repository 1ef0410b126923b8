"""Training patches cut from whole tiles, labels cropped with them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fednuclei.data.tiles import Tile


def patch_origins(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of patches covering ``[0, length)``; the last one is flush with the far edge.

    Args:
        length: tile side in pixels.
        size: patch side (must not exceed ``length``).
        stride: step between patches, 1..size.
    """
    if not 0 < stride <= size:
        raise ValueError(f"patch stride must be in 1..{size} (the patch size), got {stride}")
    if size > length:
        raise ValueError(f"patch size {size} exceeds the tile side {length}")
    origins = list(range(0, length - size + 1, stride))
    if origins[-1] != length - size:
        origins.append(length - size)
    return origins


def crop_tile(tile: Tile, y: int, x: int, size: int) -> Tile:
    """The ``size`` x ``size`` window of ``tile`` at (y, x), with its labels.

    Boxes are clipped to the window (those left with no area are dropped); points outside go.
    """
    boxes = points = instances = None
    if tile.instances is not None:
        instances = tile.instances[y : y + size, x : x + size].copy()
    if tile.boxes is not None:
        clipped = np.clip(tile.boxes - np.float32([x, y, x, y]), 0, size)
        boxes = clipped[(clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])]
    if tile.points is not None:
        shifted = tile.points - np.float32([x, y])
        points = shifted[np.all((shifted >= 0) & (shifted < size), axis=1)]
    return replace(
        tile,
        name=f"{tile.name}_y{y}_x{x}",
        image=tile.image[y : y + size, x : x + size].copy(),
        instances=instances,
        boxes=boxes,
        points=points,
        extra={**tile.extra, "patch_of": tile.name, "origin": [y, x]},
    )


def extract_patches(tiles: list[Tile], size: int, stride: int) -> list[Tile]:
    """Cut every tile into overlapping ``size`` patches (tiles smaller than ``size`` are refused)."""
    patches = []
    for tile in tiles:
        if min(tile.height, tile.width) < size:
            raise ValueError(f"tile {tile.name} is {tile.height}x{tile.width}, smaller than the patch size {size}")
        for y in patch_origins(tile.height, size, stride):
            for x in patch_origins(tile.width, size, stride):
                patches.append(crop_tile(tile, y, x, size))
    return patches
