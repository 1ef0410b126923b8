import numpy as np
import pytest
import torch
from scipy import ndimage

from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.targets import segmentation_targets


def touching_squares() -> np.ndarray:
    labels = np.zeros((12, 16), np.int32)
    labels[2:10, 2:8] = 1
    labels[2:10, 8:14] = 2
    return labels


def test_contour_separates_touching_squares():
    labels = touching_squares()
    target = segmentation_targets(labels)
    assert target.shape == (2, 12, 16) and target.dtype == np.float32
    np.testing.assert_array_equal(target[0], labels > 0)
    contour = target[1].astype(bool)
    assert not contour[labels == 0].any()
    # both sides of the shared border, 1 px inside the outer border
    assert contour[2:10, 7].all() and contour[2:10, 8].all()
    assert contour[2, 2:14].all() and not contour[3:9, 3:7].any()
    cores, n = ndimage.label(target[0].astype(bool) & ~contour)
    assert n == 2
    assert set(np.unique(labels[cores == 1])) != set(np.unique(labels[cores == 2]))


def test_loss_is_low_for_the_right_answer_and_high_for_the_wrong_one():
    target = torch.from_numpy(segmentation_targets(touching_squares()))[None]
    right = dice_bce_loss((target * 2 - 1) * 20, target)
    wrong = dice_bce_loss((1 - target * 2) * 20, target)
    assert right.item() < 0.01
    assert wrong.item() > 10


def test_masked_loss_counts_only_valid_pixels():
    target = torch.from_numpy(segmentation_targets(touching_squares()))[None]
    logits = (target * 2 - 1) * 20
    logits[..., :, :8] *= -1  # wrong on the left half
    mask = torch.zeros(1, 12, 16, dtype=torch.bool)
    mask[..., 8:] = True
    assert dice_bce_loss(logits, target, mask).item() < 0.01
    assert dice_bce_loss(logits, target, ~mask).item() > 10
    # a (N, 1, H, W) float mask means the same
    assert dice_bce_loss(logits, target, mask[:, None].float()).item() < 0.01


def test_empty_mask_gives_none():
    target = torch.zeros(2, 2, 8, 8)
    assert dice_bce_loss(torch.zeros(2, 2, 8, 8), target, torch.zeros(2, 8, 8)) is None


def test_loss_has_no_nan_without_positives_or_with_an_empty_channel_mask():
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    mask = torch.ones(2, 2, 8, 8)
    mask[:, 1] = 0
    for loss in (dice_bce_loss(logits, torch.zeros(2, 2, 8, 8)), dice_bce_loss(logits, torch.zeros(2, 2, 8, 8), mask)):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_contour_weight_shifts_the_loss_towards_the_contour_channel():
    target = torch.from_numpy(segmentation_targets(touching_squares()))[None]
    logits = torch.stack([(target[:, 0] * 2 - 1) * 20, torch.zeros_like(target[:, 1])], dim=1)  # contour unsure
    equal = dice_bce_loss(logits, target)
    weighted = dice_bce_loss(logits, target, channel_weights=(1.0, 3.0))
    assert weighted.item() > equal.item()
    assert dice_bce_loss(logits, target, channel_weights=(1.0, 1.0)).item() == pytest.approx(equal.item())


def test_wider_contours_grow_into_the_nuclei():
    labels = touching_squares()
    thin, wide = segmentation_targets(labels)[1], segmentation_targets(labels, contour_width=2)[1]
    assert (wide >= thin).all() and wide.sum() > thin.sum()
    assert not wide[labels == 0].any()
