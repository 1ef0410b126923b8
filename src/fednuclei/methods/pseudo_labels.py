"""FedMix's per-image pseudo-label rules, as pure functions.

FedMix (Wicaksana et al., IEEE TMI 2023): on a client without pixel masks, two global models
predict every training image; :func:`select_pseudo_labels` keeps the image when the two binarised
predictions agree and refines them with the client's weak labels (boxes or points). Model 1 then
trains on model 2's pseudo-label and vice versa (cross pseudo-supervision).

Conventions: probability maps are (H, W) floats in [0, 1] and a pixel is foreground when its
probability is strictly above :data:`FOREGROUND_THRESHOLD` (as in post-processing: p == 0.5 is
background). Boxes are (N, 4) ``x0, y0, x1, y1`` pixel edges (x1, y1 exclusive) and points (N, 2)
``x, y`` pixel indices, as on :class:`fednuclei.data.tiles.Tile`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fednuclei.data.tiles import SUPERVISION_LEVELS
from fednuclei.metrics import pixel_metrics
from fednuclei.run_settings import RunSettings

FOREGROUND_THRESHOLD = 0.5

_FOUR = ndimage.generate_binary_structure(2, 1)


def _binarise(prob: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """(H, W) bool foreground of an (H, W) probability map: ``prob > threshold``."""
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"expected an (H, W) probability map, got shape {prob.shape}")
    return prob > threshold


def agreement(prob_a: np.ndarray, prob_b: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> float:
    """Dice between the binarised foregrounds of two predictions of one image.

    Args:
        prob_a, prob_b: (H, W) foreground probabilities in [0, 1].
        threshold: a pixel is foreground when its probability is strictly above it.

    Returns:
        Dice in [0, 1]; 1.0 when both foregrounds are empty (the convention of
        :func:`fednuclei.metrics.pixel_metrics`: nothing predicted by either model is agreement).
    """
    return pixel_metrics(_binarise(prob_a, threshold), _binarise(prob_b, threshold))["dice"]


def _box_slices(boxes: np.ndarray, shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of each box, clipped to an image of ``shape`` (H, W).

    Edges are rounded outwards (floor of x0, y0; ceil of x1, y1), so a fractional box keeps every
    pixel it touches; integer boxes, the usual case, are taken as they are.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = shape
    x0 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(int)
    y0 = np.clip(np.floor(boxes[:, 1]), 0, height).astype(int)
    x1 = np.clip(np.ceil(boxes[:, 2]), 0, width).astype(int)
    y1 = np.clip(np.ceil(boxes[:, 3]), 0, height).astype(int)
    return [(slice(r0, r1), slice(c0, c1)) for c0, r0, c1, r1 in zip(x0, y0, x1, y1)]


def clip_to_boxes(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The mask with every pixel outside all boxes set to background.

    Args:
        mask: (H, W) binary mask (bool or 0/1).
        boxes: (N, 4) ``x0, y0, x1, y1`` pixel edges, x1, y1 exclusive; N may be 0.

    Returns:
        (H, W) bool: ``mask`` inside the union of the boxes, False elsewhere.
    """
    mask = np.asarray(mask) != 0
    inside = np.zeros_like(mask)
    for rows, cols in _box_slices(boxes, mask.shape):
        inside[rows, cols] = True
    return mask & inside


def box_coverage(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of each box's pixels that the mask covers.

    Args:
        mask: (H, W) binary mask (bool or 0/1).
        boxes: (N, 4) ``x0, y0, x1, y1`` pixel edges, x1, y1 exclusive; N may be 0.

    Returns:
        (N,) float64 in [0, 1], over the part of each box inside the image; 0.0 for a box with no
        pixel in the image (nothing there can be covered).
    """
    mask = np.asarray(mask) != 0
    coverage = np.zeros(len(np.asarray(boxes).reshape(-1, 4)))
    for i, (rows, cols) in enumerate(_box_slices(boxes, mask.shape)):
        window = mask[rows, cols]
        if window.size:
            coverage[i] = window.mean()
    return coverage


def keep_components_with_points(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Only the 4-connected components of the mask that contain at least one point.

    Args:
        mask: (H, W) binary mask (bool or 0/1).
        points: (N, 2) ``x, y`` pixel indices (rounded to the nearest pixel); points outside the
            image are ignored; N may be 0.

    Returns:
        (H, W) bool.
    """
    mask = np.asarray(mask) != 0
    components, _ = ndimage.label(mask, structure=_FOUR)
    xy = np.rint(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(int)
    height, width = mask.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    hit = components[xy[inside, 1], xy[inside, 0]]
    return np.isin(components, hit[hit > 0])


def pseudo_instances(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a binary pseudo-label: its 4-connected components.

    Lets :func:`fednuclei.model.targets.segmentation_targets` give a pseudo-label a contour channel
    as it does ground truth (touching nuclei stay merged: a pseudo-label has no instance split).

    Args:
        mask: (H, W) binary mask (bool or 0/1).

    Returns:
        (H, W) int32, 0 = background, components numbered 1..K.
    """
    labels, _ = ndimage.label(np.asarray(mask) != 0, structure=_FOUR)
    return labels.astype(np.int32)


@dataclass(frozen=True)
class PseudoLabelRule:
    """Thresholds of FedMix's image selection (:meth:`of` a run's settings).

    Attributes:
        tau: minimum Dice between the two models' binarised predictions, in [0, 1].
        min_box_fill: a box counts as covered when the pseudo-label fills at least this fraction
            of it, in [0, 1] (a round nucleus fills pi/4 ~ 0.785 of its box, so 0.5 leaves room
            for a slightly small prediction).
        min_covered_boxes: an image with boxes is kept only when at least this fraction of its
            boxes are covered, in [0, 1].
    """

    tau: float
    min_box_fill: float
    min_covered_boxes: float

    @classmethod
    def of(cls, settings: RunSettings) -> PseudoLabelRule:
        """The thresholds of a run (their defaults and range checks are the settings')."""
        return cls(tau=settings.tau, min_box_fill=settings.min_box_fill, min_covered_boxes=settings.min_covered_boxes)


@dataclass(frozen=True)
class SelectedPair:
    """The cross pseudo-labels of one selected image.

    Attributes:
        target_for_model_1: (H, W) bool, derived from model 2's prediction.
        target_for_model_2: (H, W) bool, derived from model 1's prediction.
        agreement: Dice of the two binarised predictions before refinement, in [tau, 1].
    """

    target_for_model_1: np.ndarray
    target_for_model_2: np.ndarray
    agreement: float


def _boxes_covered(mask: np.ndarray, boxes: np.ndarray, rule: PseudoLabelRule) -> bool:
    """Whether at least ``rule.min_covered_boxes`` of the boxes are filled to ``rule.min_box_fill``."""
    covered = box_coverage(mask, boxes) >= rule.min_box_fill
    return covered.mean() >= rule.min_covered_boxes


def require_weak_supervision(supervision: str) -> None:
    """Refuse ``pixel`` (pixel clients train on their ground truth, never on pseudo-labels) and
    unknown levels: pseudo-labels are for ``bbox``, ``points`` and ``none`` clients."""
    if supervision == "pixel":
        raise ValueError("pixel-labelled clients train on their ground truth, never on pseudo-labels: "
                         "pseudo-labels are for bbox, points or none clients")
    if supervision not in SUPERVISION_LEVELS:
        raise ValueError(f"unknown supervision {supervision!r}, expected one of {SUPERVISION_LEVELS}")


def select_pseudo_labels(
    prob_1: np.ndarray,
    prob_2: np.ndarray,
    supervision: str,
    rule: PseudoLabelRule,
    boxes: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> SelectedPair | None:
    """FedMix's pseudo-labels for one training image of a client without pixel masks.

    Both predictions are binarised (p > 0.5); the image is kept only when their Dice is at least
    ``rule.tau``. The kept maps are then refined by the client's labels:

    * ``none``: taken as they are;
    * ``bbox``: each map is clipped to the boxes; the image is dropped unless, on BOTH clipped maps,
      at least ``rule.min_covered_boxes`` of the boxes are filled to ``rule.min_box_fill`` (each
      map becomes a training target, so each must match the boxes); an image with no box is
      dropped (boxes are the client's nuclei: no box, nothing to confirm the prediction with);
    * ``points``: each map keeps only its components containing a point; an image with no point
      is dropped for the same reason.

    Args:
        prob_1, prob_2: (H, W) foreground probabilities in [0, 1] of model 1 and model 2.
        supervision: the client's level: ``bbox``, ``points`` or ``none``.
        rule: the selection thresholds.
        boxes: (N, 4) ``x0, y0, x1, y1`` pixel edges (x1, y1 exclusive); required for ``bbox``.
        points: (N, 2) ``x, y`` pixel indices; required for ``points``.

    Returns:
        The pair, crossed: ``target_for_model_1`` comes from model 2's prediction and
        ``target_for_model_2`` from model 1's; or None when the image is dropped.

    Raises:
        ValueError: for ``pixel`` supervision (pixel clients always train on their ground truth,
            never on pseudo-labels), an unknown level, shapes that differ, or missing weak labels.
    """
    require_weak_supervision(supervision)
    mask_1, mask_2 = _binarise(prob_1), _binarise(prob_2)
    if mask_1.shape != mask_2.shape:
        raise ValueError(f"the two predictions differ in shape: {mask_1.shape} vs {mask_2.shape}")
    dice = pixel_metrics(mask_1, mask_2)["dice"]
    if dice < rule.tau:
        return None
    if supervision == "bbox":
        if boxes is None:
            raise ValueError("bbox supervision needs the image's boxes")
        if len(boxes) == 0:
            return None
        mask_1, mask_2 = clip_to_boxes(mask_1, boxes), clip_to_boxes(mask_2, boxes)
        if not (_boxes_covered(mask_1, boxes, rule) and _boxes_covered(mask_2, boxes, rule)):
            return None
    elif supervision == "points":
        if points is None:
            raise ValueError("points supervision needs the image's points")
        if len(points) == 0:
            return None
        mask_1, mask_2 = keep_components_with_points(mask_1, points), keep_components_with_points(mask_2, points)
    return SelectedPair(target_for_model_1=mask_2, target_for_model_2=mask_1, agreement=dice)
