"""Training patches as stacked tensors: targets once, seeded batches, symmetries on the fly."""

import numpy as np
import pytest
import torch

from fednuclei.model.batches import TrainingPatches
from fednuclei.model.targets import segmentation_targets

CPU = torch.device("cpu")


def test_labelled_patches_hold_uint8_images_and_binary_targets(tiles64):
    patches = TrainingPatches.labelled(tiles64)
    assert len(patches) == 4 and patches.images.shape == (4, 3, 64, 64) and patches.images.dtype == torch.uint8
    assert patches.targets.shape == (4, 2, 64, 64) and set(patches.targets.unique().tolist()) <= {0, 1}
    np.testing.assert_array_equal(patches.images[1].permute(1, 2, 0).numpy(), tiles64[1].image)
    np.testing.assert_array_equal(patches.targets[1].numpy(), segmentation_targets(tiles64[1].instances))
    wide = TrainingPatches.labelled(tiles64, contour_width=3)
    assert wide.targets[:, 1].sum() > patches.targets[:, 1].sum()
    assert torch.equal(wide.targets[:, 0], patches.targets[:, 0])


def test_batches_cover_every_patch_once_per_epoch_in_a_seeded_order(tiles64):
    patches = TrainingPatches.labelled(tiles64)
    batches = patches.batches(3, seed=5, device=CPU)
    epochs = [[(images, targets) for images, targets, _ in batches(epoch)] for epoch in range(2)]
    for epoch in epochs:
        assert [len(images) for images, _ in epoch] == [3, 1]
        seen = torch.cat([images for images, _ in epoch])
        assert seen.dtype == torch.float32 and 0.0 <= seen.min() and seen.max() <= 1.0
        expected = patches.images.float().div(255.0)
        assert sorted(seen.sum((1, 2, 3)).tolist()) == pytest.approx(sorted(expected.sum((1, 2, 3)).tolist()))
    rerun = patches.batches(3, seed=5, device=CPU)
    again = [[images for images, _, _ in rerun(epoch)] for epoch in range(2)]
    assert all(torch.equal(a, b) for run, other in zip(epochs, again) for (a, _), b in zip(run, other))
    orders = [torch.cat([images for images, _ in epoch]).sum((1, 2, 3)).tolist() for epoch in epochs]
    assert orders[0] != orders[1]  # each epoch reshuffles


def test_symmetries_move_images_and_targets_together(tiles64):
    patches = TrainingPatches.labelled(tiles64)
    flipped = 0
    for images, targets, _ in patches.batches(4, seed=1, device=CPU, augment=True)(0):
        for image, target in zip(images, targets):
            index = next(i for i in range(len(patches))
                         if torch.isclose(patches.images[i].float().div(255).sum(), image.sum()))
            original, labels = patches.images[index].float().div(255), patches.targets[index].float()
            matches = [(original.flip(d) if d else original, labels.flip(d) if d else labels)
                       for d in ((), (-1,), (-2,), (-2, -1))]
            matches += [(o.transpose(-1, -2), t.transpose(-1, -2)) for o, t in matches]
            found = [k for k, (o, t) in enumerate(matches) if torch.equal(o, image)]
            assert found and torch.equal(matches[found[0]][1], target)
            flipped += found[0] != 0
    assert flipped > 0  # some patches did move


def test_patches_of_several_sizes_or_none_are_refused(tiles64):
    with pytest.raises(ValueError, match="share a size"):
        TrainingPatches.of([tiles64[0].image, tiles64[0].image[:32, :32]])
    with pytest.raises(ValueError, match="no training patches"):
        TrainingPatches.of([])


def test_subset_keeps_the_chosen_images_with_new_targets(tiles64):
    images = TrainingPatches.of([tile.image for tile in tiles64])
    assert images.targets is None
    targets = [np.ones((2, 64, 64), np.uint8), np.zeros((2, 64, 64), np.uint8)]
    chosen = images.subset([2, 0], targets)
    assert torch.equal(chosen.images[0], images.images[2]) and chosen.targets[0].sum() == 2 * 64 * 64
