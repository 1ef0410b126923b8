"""The augmentation recipe: which steps, how likely, how strong; configurable from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

BBOX_ROTATE_METHODS = ("ellipse", "largest_box")


@dataclass(frozen=True)
class AugmentationRecipe:
    """Probabilities and strengths of each augmentation; defaults suit 40x H&E nuclei tiles.

    Each ``*_p`` is the probability (0..1) that the step is applied to a copy; a step with
    ``p = 0`` is left out of the Compose. Steps run in this order: symmetries, affine, elastic,
    HED stain jitter, brightness/contrast, blur. Ranges are ``(low, high)`` pairs (YAML lists work).

    Attributes:
        flip_rotate90_p: probability of one random symmetry of the square (albumentations ``D4``:
            identity, 3 rotations by 90°, 4 flips, uniformly). Tissue has no orientation. On a
            non-square tile a 90° rotation swaps height and width.
        affine_p: probability of the affine step.
        affine_scale: isotropic zoom range; 40x scans differ by a few percent in µm/pixel.
        affine_rotate_deg: rotation range in degrees; ±45 with the 90° symmetries covers all angles.
        affine_shear_deg: shear range in degrees (x and y drawn independently).
        affine_translate_frac: shift range as a fraction of the tile size (x and y independently).
        elastic_p: probability of the elastic step.
        elastic_alpha_px: RMS displacement of the elastic field, in pixels per axis (unlike
            albumentations' ``alpha``, whose effect depends on the tile size; see
            :class:`SmoothElasticTransform`).
        elastic_sigma_px: Gaussian smoothing of the field in pixels (>= 1); about a nucleus
            diameter, so nuclei bend rather than tear.
        hed_p: probability of the HED stain jitter.
        hed_scale_limit: each of H, E, D optical densities is multiplied by ``U(1-l, 1+l)``.
        hed_shift_limit: then shifted by ``U(-l, l)``, in natural-log optical density units
            (skimage's ``rgb2hed`` values times ``ln(1e6)`` = 13.8). 0.05/0.05 is a light jitter
            (background moves by up to ~10 grey levels); ~0.2/0.2 a strong one (cf. the
            "HED-light"/"HED-strong" augmentations of Tellez et al. 2019).
        brightness_contrast_p: probability of ``RandomBrightnessContrast``.
        brightness_limit: brightness change range ``±l`` (fraction of 255).
        contrast_limit: contrast change range ``±l``.
        blur_p: probability of a Gaussian blur (focus variation).
        blur_sigma: blur sigma range in pixels.
        border_fill: grey level (0..255) of image pixels that geometric steps bring in from outside
            the tile; 255 looks like empty glass. Masks are always filled with background (0).
        bbox_rotate_method: how a box of a weak tile is warped (affine and elastic): ``"ellipse"``
            (the box's inscribed ellipse is warped; tight for round/oval nuclei) or
            ``"largest_box"`` (the box itself; exact for rectangles, loose for ellipses).
        bbox_min_visibility: boxes of weak tiles keeping less than this fraction of their area
            inside the image are dropped (0..1).
    """

    flip_rotate90_p: float = 1.0
    affine_p: float = 0.5
    affine_scale: tuple[float, float] = (0.9, 1.1)
    affine_rotate_deg: tuple[float, float] = (-45.0, 45.0)
    affine_shear_deg: tuple[float, float] = (-5.0, 5.0)
    affine_translate_frac: tuple[float, float] = (-0.05, 0.05)
    elastic_p: float = 0.3
    elastic_alpha_px: float = 2.0
    elastic_sigma_px: float = 10.0
    hed_p: float = 0.8
    hed_scale_limit: float = 0.05
    hed_shift_limit: float = 0.05
    brightness_contrast_p: float = 0.5
    brightness_limit: float = 0.1
    contrast_limit: float = 0.1
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    border_fill: int = 255
    bbox_rotate_method: str = "ellipse"
    bbox_min_visibility: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, tuple):
                _check(
                    isinstance(value, (tuple, list)) and len(value) == 2 and float(value[0]) <= float(value[1]),
                    f"{f.name} must be a (low, high) pair, got {value!r}",
                )
                object.__setattr__(self, f.name, (float(value[0]), float(value[1])))
            elif isinstance(f.default, str):
                _check(isinstance(value, str), f"{f.name} must be a string, got {value!r}")
            else:
                _check(
                    isinstance(value, (int, float, np.number)) and not isinstance(value, bool),
                    f"{f.name} must be a number, got {value!r}",
                )
                if f.name.endswith("_p"):
                    _check(0.0 <= value <= 1.0, f"{f.name} must be a probability in [0, 1], got {value}")
        _check(self.affine_scale[0] > 0, f"affine_scale must be positive, got {self.affine_scale}")
        _check(self.blur_sigma[0] >= 0, f"blur_sigma must be >= 0, got {self.blur_sigma}")
        _check(self.elastic_alpha_px >= 0, f"elastic_alpha_px must be >= 0, got {self.elastic_alpha_px}")
        _check(self.elastic_sigma_px >= 1, f"elastic_sigma_px must be >= 1, got {self.elastic_sigma_px}")
        for name in ("hed_scale_limit", "hed_shift_limit", "brightness_limit", "contrast_limit"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.hed_scale_limit < 1, f"hed_scale_limit must be < 1, got {self.hed_scale_limit}")
        _check(0 <= self.border_fill <= 255, f"border_fill must be a grey level 0..255, got {self.border_fill}")
        _check(
            self.bbox_rotate_method in BBOX_ROTATE_METHODS,
            f"bbox_rotate_method must be one of {BBOX_ROTATE_METHODS}, got {self.bbox_rotate_method!r}",
        )
        _check(
            0 <= self.bbox_min_visibility <= 1,
            f"bbox_min_visibility must be in [0, 1], got {self.bbox_min_visibility}",
        )

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None = None, **overrides: Any) -> "AugmentationRecipe":
        """Recipe from a parameters mapping (e.g. Kedro YAML) plus keyword overrides.

        Missing keys keep their defaults; ``None`` gives the default recipe.

        Raises:
            ValueError: naming any unknown key, or any invalid value.
        """
        merged = {**(params or {}), **overrides}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"unknown augmentation parameter(s) {unknown}; known parameters: {sorted(known)}")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ranges as lists) for logging or writing back to YAML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
