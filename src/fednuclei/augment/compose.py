"""One albumentations Compose from a recipe, and seeding that keeps its transforms independent."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

from fednuclei.augment.elastic import SmoothElasticTransform
from fednuclei.augment.recipe import AugmentationRecipe
from fednuclei.augment.stain import HEDJitter

BOX_IDS = "box_ids"
POINT_IDS = "point_ids"


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
    steps = _steps(recipe)
    label_params: dict[str, Any] = {}
    if any(isinstance(step, A.DualTransform) for step in steps):  # albumentations warns about idle processors
        label_params["bbox_params"] = A.BboxParams(
            format="pascal_voc",
            label_fields=[BOX_IDS],
            min_visibility=recipe.bbox_min_visibility,
            min_width=1.0,
            min_height=1.0,
            clip=True,
            filter_invalid_bboxes=True,
        )
        label_params["keypoint_params"] = A.KeypointParams(
            format="xy", label_fields=[POINT_IDS], remove_invisible=True
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


def _steps(r: AugmentationRecipe) -> list[A.BasicTransform]:
    """The recipe's steps with a non-zero probability, in the order the recipe documents."""
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
    return steps
