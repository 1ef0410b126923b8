"""Label-preserving augmentation of H&E tiles (albumentations 2.x).

One :class:`AugmentationRecipe` (configurable from YAML parameters) becomes one
``albumentations.Compose`` (:func:`build_transform`) that moves the image, the instance map,
the boxes and the points together. :func:`augment_tile` applies it to a :class:`~fednuclei.data.tiles.Tile`
with one alignment rule:

* a tile **with instances** has its instance map warped as a mask (nearest neighbour) and its boxes
  and points *recomputed* from the warped map (exact alignment, vanished nuclei dropped, labels
  renumbered ``1..N`` in the order of the original labels);
* a tile **without instances** (weak client: boxes and/or points) has its boxes and points
  moved by albumentations' bbox / keypoint processing (``D4`` and ``Affine`` natively; the elastic
  step is :class:`SmoothElasticTransform`, which overrides the slow native box/point mapping),
  boxes clipped to the image, boxes less than ``bbox_min_visibility`` visible and points outside
  the image removed;
* a tile's label *kinds* never change: instances are never invented for a tile that had none, and
  boxes / points are only produced where the original tile carried them.

Reproducibility: :func:`seed_transform` gives every transform of a Compose one shared pair of
generators. Do not use albumentations' ``Compose(seed=...)`` / ``set_random_seed`` for this: in
2.0.8 it seeds every child transform with the *same* seed, so their draws are identical, e.g.
``HorizontalFlip(p=.5)`` and ``VerticalFlip(p=.5)`` then always fire together.
:func:`augment_tiles` derives each copy's generator from ``(seed, tile name, copy index)``, so a
tile's copies do not depend on which other tiles are in the list or on their order.

A Compose is stateful (its generators); do not share one between threads.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import hed_from_rgb, rgb_from_hed
from skimage.draw import disk
from skimage.measure import block_reduce
from skimage.segmentation import find_boundaries

from fednuclei.data.tiles import Tile
from fednuclei.data.weak_labels import boxes_from_instances, points_from_instances

__all__ = [
    "AugmentationRecipe",
    "HEDJitter",
    "SmoothElasticTransform",
    "augment_tile",
    "augment_tiles",
    "build_transform",
    "contact_sheet",
    "hed_jitter",
    "rgb_to_hed",
    "seed_transform",
]

_BOX_IDS = "box_ids"
_POINT_IDS = "point_ids"
_BBOX_ROTATE_METHODS = ("ellipse", "largest_box")


# --------------------------------------------------------------------------------------------
# recipe


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
            self.bbox_rotate_method in _BBOX_ROTATE_METHODS,
            f"bbox_rotate_method must be one of {_BBOX_ROTATE_METHODS}, got {self.bbox_rotate_method!r}",
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


# --------------------------------------------------------------------------------------------
# HED stain jitter

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


# --------------------------------------------------------------------------------------------
# elastic


class SmoothElasticTransform(A.ElasticTransform):
    """``ElasticTransform`` with a size-independent field and fast, accurate box/point mapping.

    albumentations 2.0.8's field (max-normalised noise, blurred with replicated borders after
    stacking dx over dy) has a strength that depends on the tile size and is ~3x stronger within
    ``sigma`` of the tile edges; its bbox mapping rasterises one full-size mask per box (about 9 s
    for 300 boxes on a 1000x1000 tile) and its keypoint mapping is off by about a pixel.
    Here:

    * the field is white noise smoothed per axis with a Gaussian of ``sigma`` px (reflected borders)
      and scaled to an RMS of ``alpha`` px per axis;
    * image and mask warping are albumentations' own (``cv2.remap``, nearest for masks);
    * a point ``p`` goes to the output pixel ``u`` with ``u + d(u) = p`` (the image is sampled at
      ``u + d(u)``), solved by fixed-point iteration; a box goes to the bounding box of the mapped
      outline of its inscribed ellipse (``bbox_method="ellipse"``, for round nuclei: the box's
      corners hold no nucleus, and warping them would loosen the box) or of the box itself
      (``"largest_box"``), as ``Affine(rotate_method=...)`` does for rotations.
    """

    _ITERATIONS = 12

    def __init__(
        self,
        alpha: float = 2.0,
        sigma: float = 10.0,
        fill: float | tuple[float, ...] = 0,
        fill_mask: float = 0,
        bbox_method: str = "ellipse",
        p: float = 0.5,
    ):
        if bbox_method not in _BBOX_ROTATE_METHODS:
            raise ValueError(f"bbox_method must be one of {_BBOX_ROTATE_METHODS}, got {bbox_method!r}")
        self.bbox_method = bbox_method
        super().__init__(
            alpha=alpha,
            sigma=sigma,
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_CONSTANT,
            fill=fill,
            fill_mask=fill_mask,
            p=p,
        )

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        fields_ = self.random_generator.standard_normal((2, height, width), dtype=np.float32)
        for field_ in fields_:
            cv2.GaussianBlur(field_, (0, 0), self.sigma, dst=field_, borderType=cv2.BORDER_REFLECT_101)
            rms = float(np.sqrt(np.mean(np.square(field_, dtype=np.float64))))
            field_ *= self.alpha / rms if rms > 0 else 0.0
        grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
        return {"map_x": grid_x + fields_[0], "map_y": grid_y + fields_[1], "displacement": fields_}

    def apply_to_keypoints(self, keypoints: np.ndarray, displacement: np.ndarray, **params: Any) -> np.ndarray:
        if len(keypoints) == 0:
            return keypoints
        out = keypoints.copy()
        out[:, 0], out[:, 1] = _forward_map(keypoints[:, 0], keypoints[:, 1], displacement, self._ITERATIONS)
        return out

    def apply_to_bboxes(self, bboxes: np.ndarray, displacement: np.ndarray, **params: Any) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        height, width = params["shape"][:2]
        # normalised pixel edges -> pixel-centre coordinates of the box's extent (x1, y1 exclusive)
        x0, x1 = bboxes[:, 0] * width - 0.5, bboxes[:, 2] * width - 0.5
        y0, y1 = bboxes[:, 1] * height - 0.5, bboxes[:, 3] * height - 0.5
        samples = 4 * int(np.ceil(max(np.max(x1 - x0), np.max(y1 - y0), 1.0))) + 8
        t = np.linspace(0.0, 1.0, samples, dtype=np.float64)[None, :]
        if self.bbox_method == "ellipse":  # the inscribed ellipse: a nucleus, not its box
            angle = 2 * np.pi * t
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            outline_x = cx[:, None] + rx[:, None] * np.cos(angle)
            outline_y = cy[:, None] + ry[:, None] * np.sin(angle)
        else:  # the rectangle itself
            along_x = x0[:, None] + (x1 - x0)[:, None] * t
            along_y = y0[:, None] + (y1 - y0)[:, None] * t
            ones = np.ones_like(t)
            outline_x = np.concatenate([along_x, along_x, x0[:, None] * ones, x1[:, None] * ones], axis=1)
            outline_y = np.concatenate([y0[:, None] * ones, y1[:, None] * ones, along_y, along_y], axis=1)
        mx, my = _forward_map(outline_x.ravel(), outline_y.ravel(), displacement, self._ITERATIONS)
        mx, my = mx.reshape(outline_x.shape), my.reshape(outline_y.shape)
        out = bboxes.copy()
        out[:, 0] = (mx.min(axis=1) + 0.5) / width
        out[:, 2] = (mx.max(axis=1) + 0.5) / width
        out[:, 1] = (my.min(axis=1) + 0.5) / height
        out[:, 3] = (my.max(axis=1) + 0.5) / height
        return out


def _forward_map(
    x: np.ndarray, y: np.ndarray, displacement: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``u + d(u) = p`` for the output positions ``u`` of input points ``p`` (pixel centres).

    ``displacement`` is (2, H, W): the output pixel ``u`` samples the input at ``u + d(u)``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    dx, dy = displacement
    height, width = dx.shape
    ux, uy = x.copy(), y.copy()
    for _ in range(iterations):
        coords = np.stack([np.clip(uy, 0, height - 1), np.clip(ux, 0, width - 1)])
        ux = x - ndimage.map_coordinates(dx, coords, order=1, mode="nearest")
        uy = y - ndimage.map_coordinates(dy, coords, order=1, mode="nearest")
    return ux, uy


# --------------------------------------------------------------------------------------------
# compose


def build_transform(recipe: AugmentationRecipe | Mapping[str, Any] | None = None) -> A.Compose:
    """One albumentations pipeline moving image, instance mask, boxes and points together.

    Call it as ``transform(image=..., mask=..., bboxes=..., box_ids=..., keypoints=..., point_ids=...)``;
    :func:`augment_tile` does this for a Tile. Boxes are ``pascal_voc`` (x0, y0, x1, y1 pixel edges),
    points ``xy`` (pixel centres); both carry an id label field so survivors can be matched.

    Args:
        recipe: an :class:`AugmentationRecipe`, a parameters mapping for
            :meth:`AugmentationRecipe.from_dict`, or None for the defaults.

    Returns:
        An ``albumentations.Compose``, seeded with 0 (reseed it with :func:`seed_transform`).
    """
    if not isinstance(recipe, AugmentationRecipe):
        recipe = AugmentationRecipe.from_dict(recipe)
    r = recipe
    fill = (float(r.border_fill),) * 3
    steps: list[A.BasicTransform] = []
    if r.flip_rotate90_p > 0:
        steps.append(A.D4(p=r.flip_rotate90_p))
    if r.affine_p > 0:
        steps.append(
            A.Affine(
                scale=r.affine_scale,
                rotate=r.affine_rotate_deg,
                shear=r.affine_shear_deg,
                translate_percent=r.affine_translate_frac,
                keep_ratio=True,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=fill,
                fill_mask=0,
                rotate_method=r.bbox_rotate_method,
                p=r.affine_p,
            )
        )
    if r.elastic_p > 0 and r.elastic_alpha_px > 0:
        steps.append(
            SmoothElasticTransform(
                alpha=r.elastic_alpha_px,
                sigma=r.elastic_sigma_px,
                fill=fill,
                bbox_method=r.bbox_rotate_method,
                p=r.elastic_p,
            )
        )
    if r.hed_p > 0:
        steps.append(HEDJitter(scale_limit=r.hed_scale_limit, shift_limit=r.hed_shift_limit, p=r.hed_p))
    if r.brightness_contrast_p > 0:
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=r.brightness_limit, contrast_limit=r.contrast_limit, p=r.brightness_contrast_p
            )
        )
    if r.blur_p > 0 and r.blur_sigma[1] > 0:
        steps.append(A.GaussianBlur(sigma_limit=r.blur_sigma, blur_limit=0, p=r.blur_p))
    label_params: dict[str, Any] = {}
    if any(isinstance(step, A.DualTransform) for step in steps):  # albumentations warns about idle processors
        label_params["bbox_params"] = A.BboxParams(
            format="pascal_voc",
            label_fields=[_BOX_IDS],
            min_visibility=r.bbox_min_visibility,
            min_width=1.0,
            min_height=1.0,
            clip=True,
            filter_invalid_bboxes=True,
        )
        label_params["keypoint_params"] = A.KeypointParams(
            format="xy", label_fields=[_POINT_IDS], remove_invisible=True
        )
    transform = A.Compose(steps, mask_interpolation=cv2.INTER_NEAREST, **label_params)
    seed_transform(transform, 0)
    return transform


def seed_transform(transform: A.BaseCompose, seed: int | Sequence[int]) -> None:
    """Make ``transform``'s next outputs a function of ``seed`` only.

    All its transforms share one numpy and one Python generator drawn from ``seed`` (an int or a
    sequence of non-negative ints, e.g. ``(seed, tile_hash, copy)``). Unlike albumentations'
    ``set_random_seed``, which gives each transform an identical generator, draws are not
    correlated across transforms.
    """
    entropy = [int(s) % 2**64 for s in (seed if isinstance(seed, Sequence) else [seed])]
    sequence = np.random.SeedSequence(entropy)
    py_seed = int.from_bytes(sequence.generate_state(4, np.uint64).tobytes(), "little")
    transform.set_random_state(np.random.default_rng(sequence), random.Random(py_seed))


def _copy_seed(seed: int, name: str, copy_index: int) -> tuple[int, int, int]:
    return (int(seed) % 2**64, zlib.crc32(name.encode("utf-8")), int(copy_index))


# --------------------------------------------------------------------------------------------
# tiles


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
        data |= _label_data(boxes, points)
        out = transform(**data)
        height, width = out["image"].shape[:2]
        new_boxes = _columns(out["bboxes"], 4)
        new_points = np.rint(_columns(out["keypoints"], 2))
        np.clip(new_points[:, 0], 0, width - 1, out=new_points[:, 0])
        np.clip(new_points[:, 1], 0, height - 1, out=new_points[:, 1])
        box_ids = np.asarray(out[_BOX_IDS], np.int64).reshape(-1)
        point_ids = np.asarray(out[_POINT_IDS], np.int64).reshape(-1)
        new_boxes, box_ids = new_boxes[np.argsort(box_ids, kind="stable")], np.sort(box_ids)
        new_points, point_ids = new_points[np.argsort(point_ids, kind="stable")], np.sort(point_ids)
        if tile.boxes is not None and tile.points is not None and len(boxes) == len(points):
            both = np.intersect1d(box_ids, point_ids)  # keep nucleus i only with both its box and point
            new_boxes = new_boxes[np.isin(box_ids, both)]
            new_points = new_points[np.isin(point_ids, both)]
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
    return {"bboxes": boxes, _BOX_IDS: np.arange(len(boxes)), "keypoints": points, _POINT_IDS: np.arange(len(points))}


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


# --------------------------------------------------------------------------------------------
# contact sheet

_OUTLINE = np.array([0, 255, 0], np.uint8)
_BOX = np.array([255, 255, 0], np.uint8)
_POINT = np.array([0, 255, 255], np.uint8)
_SHEET_BACKGROUND = np.array([40, 40, 40], np.uint8)


def contact_sheet(
    originals: Sequence[Tile],
    augmented: Sequence[Tile],
    path: str | Path | None = None,
    max_tiles: int = 6,
    copies_shown: int = 3,
    cell_size: int = 256,
    gap: int = 4,
) -> np.ndarray:
    """Grid of originals (first column) beside their augmented copies, labels drawn on top.

    Row ``i`` shows ``originals[i]`` and the first ``copies_shown`` tiles of ``augmented`` whose
    ``extra["augmented_from"]`` is its name (missing copies stay blank). Instances are drawn as green
    outlines; tiles without instances get yellow boxes and cyan dots for points. Each tile is scaled to
    fit a ``cell_size`` square.

    Args:
        originals: tiles as they were; the first ``max_tiles`` are shown.
        augmented: output of :func:`augment_tiles`.
        path: if given, the sheet is also written there as PNG.

    Returns:
        (rows * (cell_size + gap) + gap, (1 + copies_shown) * (cell_size + gap) + gap, 3) uint8 RGB,
        with ``rows = min(len(originals), max_tiles)``.
    """
    rows = originals[:max_tiles]
    columns = 1 + copies_shown
    sheet = np.empty((len(rows) * (cell_size + gap) + gap, columns * (cell_size + gap) + gap, 3), np.uint8)
    sheet[:] = _SHEET_BACKGROUND
    copies: dict[str, list[Tile]] = {}
    for tile in augmented:
        copies.setdefault(tile.extra.get("augmented_from", ""), []).append(tile)
    for r, original in enumerate(rows):
        shown = [original, *copies.get(original.name, [])[:copies_shown]]
        for c, tile in enumerate(shown):
            cell = _draw_tile(tile, cell_size)
            top, left = gap + r * (cell_size + gap), gap + c * (cell_size + gap)
            sheet[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(path)
    return sheet


def _draw_tile(tile: Tile, cell_size: int) -> np.ndarray:
    """Tile scaled to fit ``cell_size`` with its labels drawn."""
    height, width = tile.image.shape[:2]
    scale = cell_size / max(height, width)
    out_h, out_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    factor = int(1 / scale) if scale < 1 else 1
    image = tile.image
    if factor > 1:  # box-average before nearest sampling, so downscaling does not alias
        image = block_reduce(image, (factor, factor, 1), np.mean).astype(np.uint8)
    cell = _resample_nearest(image, out_h, out_w).copy()
    if tile.instances is not None:
        outline = find_boundaries(tile.instances, mode="inner")
        if factor > 1:
            outline = block_reduce(outline, (factor, factor), np.max)
        cell[_resample_nearest(outline, out_h, out_w)] = _OUTLINE
        return cell
    thickness = max(1, cell_size // 200)
    if tile.boxes is not None:
        for x0, y0, x1, y1 in np.asarray(tile.boxes, np.float64).reshape(-1, 4) * scale:
            c0, c1 = int(np.clip(np.floor(x0), 0, out_w - 1)), int(np.clip(np.ceil(x1) - 1, 0, out_w - 1))
            r0, r1 = int(np.clip(np.floor(y0), 0, out_h - 1)), int(np.clip(np.ceil(y1) - 1, 0, out_h - 1))
            cell[r0 : r0 + thickness, c0 : c1 + 1] = _BOX
            cell[max(r1 - thickness + 1, 0) : r1 + 1, c0 : c1 + 1] = _BOX
            cell[r0 : r1 + 1, c0 : c0 + thickness] = _BOX
            cell[r0 : r1 + 1, max(c1 - thickness + 1, 0) : c1 + 1] = _BOX
    if tile.points is not None:
        radius = max(1.5, cell_size / 128)
        for x, y in (np.asarray(tile.points, np.float64).reshape(-1, 2) + 0.5) * scale:
            rr, cc = disk((y, x), radius, shape=cell.shape[:2])
            cell[rr, cc] = _POINT
    return cell


def _resample_nearest(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    rows = np.minimum(((np.arange(out_h) + 0.5) * array.shape[0] / out_h).astype(int), array.shape[0] - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * array.shape[1] / out_w).astype(int), array.shape[1] - 1)
    return array[rows[:, None], cols[None, :]]
