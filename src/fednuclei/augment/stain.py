"""Stain jitter in haematoxylin-eosin-DAB optical density (Ruifrok & Johnston stain vectors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
from skimage.color import hed_from_rgb, rgb_from_hed

_OD_OF_GREY = -np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0).astype(np.float32)
_HED_FROM_RGB = hed_from_rgb.astype(np.float64)
_RGB_FROM_HED = rgb_from_hed.astype(np.float64)


def rgb_to_hed(image: np.ndarray) -> np.ndarray:
    """Haematoxylin, eosin and DAB optical densities of an RGB image.

    Same stain vectors as ``skimage.color.rgb2hed`` (Ruifrok & Johnston) but natural-log OD,
    ``OD = -ln((I + 1) / 256)``, and no clipping of negative densities, so the conversion is
    exactly invertible: ``rgb2hed`` values are these divided by ``ln(1e6)`` for in-gamut colours.

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (H, W, 3) float32 OD of H, E, D (about 0 for white, ~1-2 for dark nuclei).
    """
    _check_rgb_uint8(image)
    return (_OD_OF_GREY[image] @ _HED_FROM_RGB.astype(np.float32)).astype(np.float32)


def hed_jitter(image: np.ndarray, scale: Sequence[float], shift: Sequence[float]) -> np.ndarray:
    """Rescale and shift each stain's optical density: ``hed' = scale * hed + shift``.

    Args:
        image: (H, W, 3) uint8 RGB.
        scale: 3 multipliers for H, E, D (1 = unchanged).
        shift: 3 offsets for H, E, D in natural-log OD units (0 = unchanged).

    Returns:
        (H, W, 3) uint8 RGB; ``scale=(1,1,1), shift=(0,0,0)`` returns the image unchanged (exact
        round trip, unlike ``hed2rgb(rgb2hed(x))``, which clips negative densities).
    """
    _check_rgb_uint8(image)
    scale = np.asarray(scale, np.float64).reshape(3)
    shift = np.asarray(shift, np.float64).reshape(3)
    # Linear in OD: od' = od @ (hed_from_rgb diag(scale) rgb_from_hed) + shift @ rgb_from_hed.
    mix = (_HED_FROM_RGB * scale[None, :]) @ _RGB_FROM_HED
    offset = shift @ _RGB_FROM_HED
    od = _OD_OF_GREY[image] @ mix.astype(np.float32) + offset.astype(np.float32)
    out = np.exp(-od, out=od)
    out *= 256.0
    out -= 1.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _check_rgb_uint8(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")


class HEDJitter(A.ImageOnlyTransform):
    """albumentations transform: random per-stain scale and shift in HED optical density.

    Draws ``scale ~ U(1 - scale_limit, 1 + scale_limit)`` and ``shift ~ U(-shift_limit, shift_limit)``
    for each of H, E, D from the transform's own generator (so ``Compose`` seeding covers it),
    then applies :func:`hed_jitter`. Image only: masks, boxes and points are untouched.
    """

    def __init__(self, scale_limit: float = 0.05, shift_limit: float = 0.05, p: float = 0.5):
        super().__init__(p=p)
        if not (0 <= scale_limit < 1 and shift_limit >= 0):
            raise ValueError(f"need 0 <= scale_limit < 1 and shift_limit >= 0, got {scale_limit}, {shift_limit}")
        self.scale_limit = float(scale_limit)
        self.shift_limit = float(shift_limit)

    def get_params(self) -> dict[str, Any]:
        scale = self.random_generator.uniform(1 - self.scale_limit, 1 + self.scale_limit, 3)
        shift = self.random_generator.uniform(-self.shift_limit, self.shift_limit, 3)
        return {"scale": scale, "shift": shift}

    def apply(self, img: np.ndarray, scale: np.ndarray, shift: np.ndarray, **params: Any) -> np.ndarray:
        return hed_jitter(img, scale, shift)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_limit", "shift_limit")
