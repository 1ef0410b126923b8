import numpy as np
import pytest
import torch

from fednuclei.methods import fedst, pseudo_labels
from fednuclei.methods.fedst import gamma_perturb
from fednuclei.methods.pseudo_labels import (
    PseudoLabelRule,
    agreement,
    box_coverage,
    clip_to_boxes,
    keep_components_with_points,
    pseudo_instances,
)
from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.targets import segmentation_targets
from fednuclei.run_settings import RunSettings

# The thresholds' defaults live in the run settings; these wrappers apply them.
DEFAULTS = RunSettings()


def rule_of(**changes) -> PseudoLabelRule:
    return PseudoLabelRule.of(RunSettings(**changes))


def select_pseudo_labels(prob_1, prob_2, supervision, boxes=None, points=None, rule=None):
    return pseudo_labels.select_pseudo_labels(prob_1, prob_2, supervision, rule or rule_of(), boxes=boxes,
                                              points=points)


def confidence_mask(prob, high=DEFAULTS.confidence_high, low=DEFAULTS.confidence_low):
    return fedst.confidence_mask(prob, high=high, low=low)


def sample_gamma(generator, low=DEFAULTS.gamma_low, high=DEFAULTS.gamma_high):
    return fedst.sample_gamma(generator, low=low, high=high)


def prob(mask: np.ndarray) -> np.ndarray:
    """A confident prediction of ``mask``: 0.9 on it, 0.1 elsewhere."""
    return np.where(mask, 0.9, 0.1)


def mask_of(shape, *pixels) -> np.ndarray:
    """(H, W) bool, True at the given (row, col) pixels."""
    mask = np.zeros(shape, bool)
    for row, col in pixels:
        mask[row, col] = True
    return mask


def square(rows: slice, cols: slice, shape=(8, 8)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


# boxes x0, y0, x1, y1 (x1, y1 exclusive) of the 2x2 squares A (rows/cols 1-2) and B (rows/cols 5-6)
BOX_A = [1, 1, 3, 3]
BOX_B = [5, 5, 7, 7]
A = square(slice(1, 3), slice(1, 3))
B = square(slice(5, 7), slice(5, 7))


# --------------------------------------------------------------------------------------------
# agreement


def test_agreement_is_the_dice_of_the_binarised_maps():
    # 4 px (row 0, cols 0-3) vs 4 px (row 0, cols 2-5), sharing cols 2-3: 2*2 / (4+4) = 0.5
    a = square(slice(0, 1), slice(0, 4), (6, 6))
    b = square(slice(0, 1), slice(2, 6), (6, 6))
    assert agreement(prob(a), prob(b)) == 0.5


def test_agreement_of_two_empty_maps_is_one():
    assert agreement(np.zeros((6, 6)), np.zeros((6, 6))) == 1.0


def test_agreement_threshold_is_strict():
    # p == 0.5 is background: both maps empty -> 1.0; just above it is foreground -> 0.0
    assert agreement(np.full((6, 6), 0.5), np.zeros((6, 6))) == 1.0
    assert agreement(np.full((6, 6), 0.5), np.full((6, 6), 0.51)) == 0.0


# --------------------------------------------------------------------------------------------
# boxes and points


def test_clip_to_boxes_removes_pixels_outside_every_box():
    stray = mask_of((8, 8), (6, 1))
    np.testing.assert_array_equal(clip_to_boxes(A | B | stray, np.array([BOX_A, BOX_B])), A | B)


def test_clip_to_boxes_handles_boxes_past_the_border_and_no_box():
    # box x 6..10, y -2..3 -> inside the image: rows 0-2, cols 6-7
    full = np.ones((8, 8), bool)
    np.testing.assert_array_equal(clip_to_boxes(full, np.array([[6, -2, 10, 3]])), square(slice(0, 3), slice(6, 8)))
    assert not clip_to_boxes(full, np.zeros((0, 4))).any()


def test_box_coverage_is_the_filled_fraction_of_each_box():
    # A's top row (2 of its 4 px) -> 0.5; B empty -> 0.0
    half_a = mask_of((8, 8), (1, 1), (1, 2))
    np.testing.assert_array_equal(box_coverage(half_a, np.array([BOX_A, BOX_B])), [0.5, 0.0])
    assert box_coverage(half_a, np.zeros((0, 4))).shape == (0,)


def test_keep_components_with_points_keeps_only_pointed_components():
    diagonal = mask_of((8, 8), (3, 3))  # touches A by a corner only: its own 4-connected component
    points = np.array([[1, 2], [20, -3]])  # x=1, y=2 inside A; the other is outside the image
    np.testing.assert_array_equal(keep_components_with_points(A | B | diagonal, points), A)
    assert not keep_components_with_points(A, np.zeros((0, 2))).any()


def test_pseudo_instances_are_4_connected_components():
    diagonal = mask_of((8, 8), (3, 3))
    labels = pseudo_instances(A | B | diagonal)
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert len(np.unique(labels[A])) == 1 and labels[3, 3] != labels[2, 2]
    target = segmentation_targets(labels)
    np.testing.assert_array_equal(target[0], A | B | diagonal)


# --------------------------------------------------------------------------------------------
# selection


# Two different maps of 10 px sharing 9: row 0 (8 px) + (1, 0) in both, then (1, 1) vs (1, 2).
# Dice = 2*9 / (10+10) = 0.9 exactly.
ROW_0 = square(slice(0, 1), slice(0, 8))
MAP_1 = ROW_0 | mask_of((8, 8), (1, 0), (1, 1))
MAP_2 = ROW_0 | mask_of((8, 8), (1, 0), (1, 2))


def test_rule_validates_its_fractions():
    with pytest.raises(ValueError, match="tau"):
        rule_of(tau=1.5)
    with pytest.raises(ValueError, match="min_box_fill"):
        rule_of(min_box_fill=-0.1)


def test_agreement_exactly_at_tau_is_kept():
    pair = select_pseudo_labels(prob(MAP_1), prob(MAP_2), "none", rule=rule_of(tau=0.9))
    assert pair is not None and pair.agreement == 0.9


def test_agreement_just_below_tau_is_dropped():
    # 9 px vs 9 px sharing 8: 2*8 / 18 = 0.888...
    map_1 = ROW_0 | mask_of((8, 8), (1, 0))
    map_2 = ROW_0 | mask_of((8, 8), (1, 1))
    assert select_pseudo_labels(prob(map_1), prob(map_2), "none", rule=rule_of(tau=0.9)) is None


def test_none_keeps_the_binarised_maps_crossed():
    pair = select_pseudo_labels(prob(MAP_1), prob(MAP_2), "none")
    assert pair.target_for_model_1.dtype == bool
    # model 1 learns from model 2's map and vice versa; MAP_1 != MAP_2, so a swap would show
    np.testing.assert_array_equal(pair.target_for_model_1, MAP_2)
    np.testing.assert_array_equal(pair.target_for_model_2, MAP_1)


def test_pixel_supervision_is_an_error():
    with pytest.raises(ValueError, match="ground truth"):
        select_pseudo_labels(prob(A), prob(A), "pixel")


def test_unknown_supervision_and_missing_labels_are_errors():
    with pytest.raises(ValueError, match="unknown supervision"):
        select_pseudo_labels(prob(A), prob(A), "scribbles")
    with pytest.raises(ValueError, match="boxes"):
        select_pseudo_labels(prob(A), prob(A), "bbox")
    with pytest.raises(ValueError, match="points"):
        select_pseudo_labels(prob(A), prob(A), "points")


def test_bbox_clips_predictions_to_the_boxes():
    # A and B predicted plus a stray pixel; the boxes fill 4/4 each -> kept, stray removed
    stray = mask_of((8, 8), (6, 1))
    pair = select_pseudo_labels(prob(A | B | stray), prob(A | B | stray), "bbox", boxes=np.array([BOX_A, BOX_B]))
    np.testing.assert_array_equal(pair.target_for_model_1, A | B)
    np.testing.assert_array_equal(pair.target_for_model_2, A | B)


def test_bbox_drops_an_image_with_too_few_covered_boxes():
    boxes = np.array([BOX_A, BOX_B])
    # 1 of 2 boxes covered = 0.5 < 0.8: dropped; at min_covered_boxes=0.5 it is enough
    assert select_pseudo_labels(prob(A), prob(A), "bbox", boxes=boxes) is None
    assert select_pseudo_labels(prob(A), prob(A), "bbox", boxes=boxes, rule=rule_of(min_covered_boxes=0.5))
    # both covered: kept
    assert select_pseudo_labels(prob(A | B), prob(A | B), "bbox", boxes=boxes) is not None


def test_bbox_box_fill_exactly_at_min_box_fill_counts():
    # A's top row fills 2/4 = 0.5 of box A
    half_a = mask_of((8, 8), (1, 1), (1, 2))
    boxes = np.array([BOX_A])
    assert select_pseudo_labels(prob(half_a), prob(half_a), "bbox", boxes=boxes, rule=rule_of(min_box_fill=0.5))
    assert select_pseudo_labels(
        prob(half_a), prob(half_a), "bbox", boxes=boxes, rule=rule_of(min_box_fill=0.6)
    ) is None


def test_bbox_checks_coverage_on_both_maps():
    # map 1 fills A and B; map 2 fills A and 1 px of B (0.25 < 0.5): 1 of 2 boxes covered by map 2.
    # Dice = 2*5 / (8+5) = 0.77, above tau=0.5, so only the coverage of map 2 can drop the image.
    boxes = np.array([BOX_A, BOX_B])
    full, partial = A | B, A | mask_of((8, 8), (5, 5))
    rule = rule_of(tau=0.5)
    assert select_pseudo_labels(prob(full), prob(partial), "bbox", boxes=boxes, rule=rule) is None
    assert select_pseudo_labels(prob(partial), prob(full), "bbox", boxes=boxes, rule=rule) is None
    assert select_pseudo_labels(prob(full), prob(full), "bbox", boxes=boxes, rule=rule) is not None


def test_bbox_image_without_boxes_is_dropped():
    assert select_pseudo_labels(prob(A), prob(A), "bbox", boxes=np.zeros((0, 4))) is None


def test_points_keep_only_components_with_a_point():
    # a point in A (x=2, y=1), none in B: B is removed from both targets
    pair = select_pseudo_labels(prob(A | B), prob(A | B), "points", points=np.array([[2, 1]]))
    np.testing.assert_array_equal(pair.target_for_model_1, A)
    np.testing.assert_array_equal(pair.target_for_model_2, A)


def test_points_image_without_points_is_dropped():
    assert select_pseudo_labels(prob(A | B), prob(A | B), "points", points=np.zeros((0, 2))) is None


# --------------------------------------------------------------------------------------------
# FedST


def test_confidence_mask_keeps_confident_pixels_only():
    # 0.95 -> foreground target; 0.05 -> background target; 0.5 and the bounds themselves -> invalid
    p = torch.tensor([0.95, 0.05, 0.5, 0.9, 0.1]).reshape(1, 1, 1, 5)
    target, valid = confidence_mask(p)
    assert target.shape == valid.shape == p.shape and valid.dtype == torch.bool
    assert target.flatten().tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert valid.flatten().tolist() == [True, True, False, False, False]


def test_confidence_mask_validates_bounds():
    with pytest.raises(ValueError):
        confidence_mask(torch.zeros(1), high=0.1, low=0.9)


def test_all_uncertain_batch_is_skipped_by_the_loss():
    p = torch.full((2, 2, 4, 4), 0.5)
    target, valid = confidence_mask(p)
    assert int(valid.sum()) == 0
    assert dice_bce_loss(torch.zeros(2, 2, 4, 4), target, mask=valid) is None
    # a confident batch does give a finite loss
    target, valid = confidence_mask(torch.full((2, 2, 4, 4), 0.95))
    assert torch.isfinite(dice_bce_loss(torch.zeros(2, 2, 4, 4), target, mask=valid))


def test_gamma_perturb_raises_to_the_power():
    images = torch.full((1, 3, 2, 2), 0.25)
    assert torch.equal(gamma_perturb(images, 2.0), torch.full((1, 3, 2, 2), 0.0625))
    with pytest.raises(ValueError, match="gamma"):
        gamma_perturb(images, 0.0)


def test_sample_gamma_is_seeded_and_in_range():
    first = sample_gamma(torch.Generator().manual_seed(7))
    again = sample_gamma(torch.Generator().manual_seed(7))
    assert first == again and 0.7 <= first < 1.5
    with pytest.raises(ValueError):
        sample_gamma(torch.Generator(), low=0.0)
