import math

import numpy as np
import pytest
import torch

from fednuclei.model.batches import TrainingPatches
from fednuclei.model.files import state_to_arrays
from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.training import fit, train_epochs, train_on_batches

CPU = torch.device("cpu")


def fixed_batch(tiles):
    images, targets, _ = next(TrainingPatches.labelled(tiles[:1]).batches(1, seed=0, device=CPU)(0))
    return images, targets


def test_loss_falls_on_a_fixed_batch(tiles64, tiny_unet):
    model = tiny_unet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images, targets = fixed_batch(tiles64)
    losses = [train_on_batches(model, [(images, targets, None)], optimizer, CPU).loss for _ in range(30)]
    assert losses[-1] < 0.6 * losses[0]


def test_batches_with_an_empty_mask_are_skipped(tiles64, tiny_unet):
    model = tiny_unet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images, targets = fixed_batch(tiles64)
    before = state_to_arrays(model)
    empty = torch.zeros(1, 64, 64, dtype=torch.bool)
    skipped = train_on_batches(model, [(images, targets, empty)], optimizer, CPU)
    assert (skipped.steps, skipped.skipped, skipped.n_samples) == (0, 1, 0) and math.isnan(skipped.loss)
    assert all(np.array_equal(before[k], v) for k, v in state_to_arrays(model).items())
    mixed = train_on_batches(model, [(images, targets, empty), (images, targets, ~empty)], optimizer, CPU)
    assert (mixed.steps, mixed.skipped, mixed.n_samples) == (1, 1, 1) and math.isfinite(mixed.loss)


def final_weights(model, tiles, **kwargs):
    options = {"epochs": 4, "batch_size": 2, "lr": 1e-2, "device": CPU, "seed": 0, **kwargs}
    result = train_epochs(model, TrainingPatches.labelled(tiles), **options)
    return result, [p.detach().clone() for p in model.parameters()]


def test_train_epochs_lowers_the_loss(tiles64, tiny_unet):
    first, _ = final_weights(tiny_unet(), tiles64, epochs=1)
    result, _ = final_weights(tiny_unet(), tiles64, epochs=12)
    assert result.loss < 0.8 * first.loss
    assert (result.n_samples, result.steps, result.skipped) == (4, 24, 0) and result.seconds > 0


def test_train_epochs_is_deterministic_given_the_seed(tiles64, tiny_unet):
    _, weights = final_weights(tiny_unet(), tiles64, epochs=2)
    _, again = final_weights(tiny_unet(), tiles64, epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(weights, again))
    _, other_seed = final_weights(tiny_unet(), tiles64, epochs=2, seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(weights, other_seed))


def test_optimizer_state_resumes_and_lr_is_the_new_one(tiles64, tiny_unet):
    model = tiny_unet()
    result, _ = final_weights(model, tiles64, epochs=1)
    resumed = train_epochs(model, TrainingPatches.labelled(tiles64), epochs=1, batch_size=2, lr=1e-3, device=CPU,
                           optimizer_state=result.optimizer_state)
    assert resumed.optimizer_state["param_groups"][0]["lr"] == 1e-3
    assert resumed.optimizer_state["state"][0]["step"].item() == 4


def test_proximal_term_keeps_weights_near_the_reference(tiles64, tiny_unet):
    reference = [p.detach().clone() for p in tiny_unet().parameters()]

    def distance(weights):
        return sum(((w - r) ** 2).sum() for w, r in zip(weights, reference)).item()

    _, free = final_weights(tiny_unet(), tiles64)
    _, held = final_weights(tiny_unet(), tiles64, proximal_to=reference, mu=1.0)
    assert distance(held) < 0.5 * distance(free)
    with pytest.raises(ValueError, match="proximal_to"):
        final_weights(tiny_unet(), tiles64, proximal_to=reference[:-1], mu=1.0)


def test_tiles_without_instances_or_of_mixed_sizes_are_refused(tiles64, tiny_unet):
    from dataclasses import replace

    unlabelled = replace(tiles64[2], instances=None)
    with pytest.raises(ValueError, match=unlabelled.name):
        final_weights(tiny_unet(), [*tiles64[:2], unlabelled])
    small = replace(tiles64[0], image=tiles64[0].image[:32, :32], instances=tiles64[0].instances[:32, :32])
    with pytest.raises(ValueError, match="share a size"):
        final_weights(tiny_unet(), [small, *tiles64[1:]])


def test_custom_loss_that_skips_everything_gives_nan_not_a_crash(tiles64, tiny_unet):
    result, _ = final_weights(tiny_unet(), tiles64, epochs=2, loss_fn=lambda logits, target, mask: None)
    assert math.isnan(result.loss) and (result.steps, result.skipped) == (0, 4)


def test_dice_bce_is_the_default_loss():
    assert train_epochs.__kwdefaults__["loss_fn"] is dice_bce_loss and fit.__kwdefaults__["loss_fn"] is dice_bce_loss
