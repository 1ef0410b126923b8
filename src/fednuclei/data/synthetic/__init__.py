"""Seeded synthetic H&E-like tiles with exact nuclei instance masks.

The project's offline default data source and the fixture of fast tests. A tile is rendered from
two stain concentration maps (hematoxylin, eosin) by Beer–Lambert mixing: pink eosin stroma with
fibres and a few white lumen-like gaps, purple hematoxylin nuclei of varied size, shape and density,
some exactly touching. Each simulated hospital stains with its own perturbed stain vectors and
strengths, so hospitals differ in colour the way real sites do, while tiles of one hospital share
a stain up to a small per-tile jitter.

Everything is drawn from seeded ``numpy`` generators: the same arguments give identical arrays.
"""

from __future__ import annotations

import numpy as np

from fednuclei.data.synthetic.stain import REFERENCE_EOSIN, REFERENCE_HEMATOXYLIN, StainProfile, hospital_stain
from fednuclei.data.synthetic.tissue import mark_with_ink, require_int, synthetic_tile
from fednuclei.data.tiles import Tile, annotated_tile

__all__ = ["REFERENCE_EOSIN", "REFERENCE_HEMATOXYLIN", "StainProfile", "generate_synthetic_tiles", "hospital_stain",
           "mark_with_ink", "synthetic_tile"]

# Separate seed streams (the stain's is 0), so inking a hospital leaves every tile's rendering as it was.
_TILE_STREAM = 1
_INK_STREAM = 2


def generate_synthetic_tiles(
    n_hospitals: int = 4,
    tiles_per_hospital: int = 8,
    size: int = 256,
    seed: int = 0,
    nuclei_per_tile: tuple[int, int] = (25, 60),
    inked_hospitals: tuple[int, ...] | list[int] = (),
) -> list[Tile]:
    """Synthetic H&E tiles from ``n_hospitals`` simulated hospitals, each with its own stain.

    Tile ``i`` of hospital ``k`` depends only on ``seed``, ``k``, ``i``, ``size`` and
    ``nuclei_per_tile``, so adding hospitals or tiles leaves the existing ones unchanged.

    Args:
        n_hospitals: hospitals, >= 1.
        tiles_per_hospital: tiles each, >= 1.
        size: tile side in px, >= 32.
        seed: non-negative integer.
        nuclei_per_tile: inclusive (low, high) range of nuclei per tile, 0 <= low <= high
            <= size**2 / 16; crowded or small tiles hold fewer.
        inked_hospitals: indices of hospitals whose tiles carry tissue-marking ink
            (:func:`mark_with_ink`): a difference between sites that colour augmentation does not
            remove. Their tiles are otherwise the same as without ink.

    Returns:
        ``n_hospitals * tiles_per_hospital`` tiles, hospital-major, named ``synthetic_h{k}_{i:03d}``,
        group ``hospital_{k}``, with (size, size, 3) uint8 images, exact (size, size) int32
        instances, and boxes and points derived from them.
    """
    n_hospitals = require_int("n_hospitals", n_hospitals, 1)
    tiles_per_hospital = require_int("tiles_per_hospital", tiles_per_hospital, 1)
    size = require_int("size", size, 32)
    seed = require_int("seed", seed, 0)
    low, high = _nuclei_range(nuclei_per_tile, size)
    inked = {require_int("inked_hospitals entry", k, 0) for k in inked_hospitals}
    if inked - set(range(n_hospitals)):
        raise ValueError(f"inked_hospitals {sorted(inked)} name hospitals outside 0..{n_hospitals - 1}")

    tiles = []
    for k in range(n_hospitals):
        stain = hospital_stain(seed, k)
        for i in range(tiles_per_hospital):
            rng = np.random.default_rng([seed, _TILE_STREAM, k, i])
            image, instances = synthetic_tile(rng, size, stain, int(rng.integers(low, high + 1)))
            if k in inked:
                image = mark_with_ink(np.random.default_rng([seed, _INK_STREAM, k, i]), image, instances)
            tiles.append(
                annotated_tile(
                    f"synthetic_h{k}_{i:03d}",
                    image,
                    instances,
                    source="synthetic",
                    organ="synthetic",
                    group=f"hospital_{k}",
                    subset="train",
                    has_instances=True,
                    label_source="synthetic",
                )
            )
    return tiles


def _nuclei_range(nuclei_per_tile: tuple[int, int] | list[int], size: int) -> tuple[int, int]:
    """The checked inclusive (low, high) nuclei per tile."""
    if not isinstance(nuclei_per_tile, (tuple, list)) or len(nuclei_per_tile) != 2:
        raise ValueError(f"nuclei_per_tile must be a (low, high) pair, got {nuclei_per_tile!r}")
    low = require_int("nuclei_per_tile low", nuclei_per_tile[0], 0)
    high = require_int("nuclei_per_tile high", nuclei_per_tile[1], low)
    if high > size * size // 16:  # denser than a nucleus per 4x4 px is impossible with radii >= 3 px
        raise ValueError(f"nuclei_per_tile high must be <= size**2 / 16 = {size * size // 16}, got {high}")
    return low, high
