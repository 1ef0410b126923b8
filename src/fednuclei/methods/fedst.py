"""FedST, the federated self-training baseline of the FedMix paper.

Local training: a ``pixel`` client trains on its ground truth; every other client self-trains
(:func:`self_train`): per batch, the current model's confident pixels (:func:`confidence_mask`)
become targets for the same model on a :func:`gamma_perturb`-ed copy of the images, with BCE +
Dice on the confident pixels only (a batch with none is skipped). A client's *usable images* are
those with at least one confident pixel in the last epoch.

Aggregation: the first ``warmup_rounds`` rounds train only the pixel clients
(:func:`fedst_warmup_participants`); the pixel clients then hold a fixed trust share
``pixel_share`` of the aggregate (:func:`trust_share_weights`). FedRGD
(:mod:`fednuclei.methods.fedrgd`) shares this local training and these weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence

import torch

from fednuclei.data.tiles import SUPERVISION_LEVELS, Tile
from fednuclei.methods.aggregation import ClientReport, split_by_size, spread_over, trained_reports
from fednuclei.methods.client_data import ClientData
from fednuclei.methods.common import LocalResult, LocalRound, contour_weighted_loss, derived_seed, proximal
from fednuclei.methods.fedavg import train_supervised
from fednuclei.model.batches import Batch, TrainingPatches
from fednuclei.model.device import evaluating
from fednuclei.model.training import fit
from fednuclei.run_settings import RunSettings


def fedst_local_training(models: Sequence[torch.nn.Module], data: ClientData, settings: RunSettings,
                         device: torch.device, local: LocalRound) -> LocalResult:
    """One FedST / FedRGD round at one client: ground truth for a ``pixel`` client,
    :func:`self_train` for the others."""
    (model,) = models
    if data.supervision == "pixel":
        return train_supervised(model, data, settings, device, local.seed, local.lr, local.reference(0))
    if data.supervision not in SUPERVISION_LEVELS:
        raise ValueError(f"unknown supervision {data.supervision!r}; use one of {list(SUPERVISION_LEVELS)}")
    return self_train(model, data.train, settings, device, local.seed, local.lr, local.reference(0))


def self_train(model: torch.nn.Module, tiles: list[Tile], settings: RunSettings, device: torch.device,
               seed: int, lr: float | None = None, reference: list[torch.Tensor] | None = None) -> LocalResult:
    """FedST's self-training on unlabelled patches, ``local_epochs`` passes, model trained in place.

    Per batch: the current model (in eval mode, no gradient) predicts the original patches;
    :func:`~confidence_mask` keeps its pixels above
    ``confidence_high`` (target 1) or below ``confidence_low`` (target 0), in both output
    channels; the model then takes one step on a
    :func:`~gamma_perturb`-ed copy (one gamma per batch, drawn
    with a generator seeded from ``seed``) with ``dice_bce_loss(..., mask=valid)``. A batch with no
    confident pixel is skipped (no step, no NaN).

    Returns:
        usable images: those with at least one confident pixel in the last epoch; loss: the
        last epoch's mean over its stepped batches (NaN, with 0 usable images, when all were
        skipped).
    """
    start = time.perf_counter()
    if not tiles:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    images = TrainingPatches.of([tile.image for tile in tiles]).batches(settings.batch_size, seed, device,
                                                                         augment=settings.flip_rotate)
    gammas = torch.Generator().manual_seed(derived_seed(seed))
    confident = [0] * settings.local_epochs

    def batches(epoch: int) -> Iterable[Batch]:
        for batch, _, _ in images(epoch):
            target, valid = _confident_targets(model, batch, settings)
            confident[epoch] += int(valid.flatten(1).any(1).sum())
            yield gamma_perturb(batch, sample_gamma(gammas, settings.gamma_low, settings.gamma_high)), target, valid

    result = fit(model, batches, epochs=settings.local_epochs, lr=settings.lr if lr is None else lr, device=device,
                 loss_fn=contour_weighted_loss(settings), **proximal(settings, reference))
    # A batch is stepped exactly when one of its images has a confident pixel, so usable > 0
    # exactly when the last epoch's loss is a number.
    usable = confident[-1]
    return LocalResult(usable_images=usable, loss=result.loss if usable else math.nan,
                       seconds=time.perf_counter() - start)


def _confident_targets(model: torch.nn.Module, images: torch.Tensor,
                       settings: RunSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The current model's confident pixels on ``images``: (target, valid), both (N, C, H, W)."""
    with evaluating(model, images.device):
        probs = torch.sigmoid(model(images).float())
    return confidence_mask(probs, high=settings.confidence_high, low=settings.confidence_low)


def confidence_mask(prob: torch.Tensor, high: float, low: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-training targets from a prediction: confident pixels only.

    Torch only, elementwise, so it runs on the training batch's device without a round trip
    through numpy.

    Args:
        prob: probabilities in [0, 1], any shape, typically (N, C, H, W) ``sigmoid(logits)``.
        high: pixels with ``prob > high`` are foreground targets.
        low: pixels with ``prob < low`` are background targets; ``0 <= low <= high <= 1``.

    Returns:
        ``target``: same shape and dtype as ``prob``, 1.0 where ``prob > high`` else 0.0;
        ``valid``: same shape, bool, True where ``prob > high`` or ``prob < low``. Pixels in
        between are invalid: their target value means nothing. Pass ``mask=valid`` to
        :func:`fednuclei.model.losses.dice_bce_loss`, which returns None for a batch with no valid
        pixel (skip it).
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    foreground = prob > high
    return foreground.to(prob.dtype), foreground | (prob < low)


def gamma_perturb(images: torch.Tensor, gamma: float) -> torch.Tensor:
    """Gamma-perturbed copy of a batch: ``images ** gamma``.

    Args:
        images: (N, 3, H, W) float in [0, 1] (a power keeps that range).
        gamma: > 0; below 1 brightens, above 1 darkens.

    Returns:
        A new tensor of the same shape and dtype.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return images**gamma


def sample_gamma(generator: torch.Generator, low: float, high: float) -> float:
    """One gamma drawn uniformly from [low, high), reproducible through ``generator``.

    Args:
        generator: a seeded CPU :class:`torch.Generator` (the same seed gives the same gamma).
        low, high: bounds, ``0 < low <= high``.
    """
    if not 0.0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    return low + (high - low) * float(torch.rand((), generator=generator))


def trust_share_weights(reports: Sequence[ClientReport], pixel_share: float) -> dict[str, float]:
    """FedST/FedRGD aggregation weights: pixel-labelled clients keep a fixed trust share.

    Among the clients that trained, the ``pixel`` ones together get ``pixel_share`` and split it
    by usable images; the others (bbox, points, none) split ``1 - pixel_share`` the same way. If
    only one of the two kinds trained, it gets everything: a share with nobody to hold it would
    leave the weights summing to less than 1.

    Args:
        reports: one per participating client of the round, unique names.
        pixel_share: the pixel clients' share, in [0, 1] (0.9 for FedST, 0.5 for FedRGD).

    Returns:
        name -> weight in [0, 1] for every reported client (0 for those that did not train), or
        ``{}`` when no client trained.

    Raises:
        ValueError: ``pixel_share`` outside [0, 1] or duplicate names.
    """
    if not 0 <= pixel_share <= 1:
        raise ValueError(f"pixel_share must be in [0, 1], got {pixel_share}")
    trained = trained_reports(reports)
    pixel = [r for r in trained if r.supervision == "pixel"]
    weak = [r for r in trained if r.supervision != "pixel"]
    if not pixel or not weak:
        return spread_over(reports, split_by_size(trained, 1.0))
    return spread_over(reports, split_by_size(pixel, pixel_share) | split_by_size(weak, 1.0 - pixel_share))


def fedst_warmup_participants(clients: Mapping[str, str], server_round: int, warmup_rounds: int) -> list[str]:
    """FedST's participants of a round: pixel clients only during warm-up, everyone after.

    Args:
        clients: name -> supervision level, in the order the run lists its clients.
        server_round: the round, >= 1.
        warmup_rounds: rounds 1..warmup_rounds are warm-up, >= 0.

    Returns:
        The participating names, in the order of ``clients`` (stable across rounds).

    Raises:
        ValueError: ``server_round`` < 1, ``warmup_rounds`` < 0, an unknown supervision level, or
            a warm-up with no pixel client (nobody could train in it).
    """
    if server_round < 1:
        raise ValueError(f"server_round counts from 1, got {server_round}")
    if warmup_rounds < 0:
        raise ValueError(f"warmup_rounds must be >= 0, got {warmup_rounds}")
    for name, supervision in clients.items():
        if supervision not in SUPERVISION_LEVELS:
            raise ValueError(f"client {name!r}: unknown supervision {supervision!r}; "
                             f"use one of {list(SUPERVISION_LEVELS)}")
    pixel = [name for name, supervision in clients.items() if supervision == "pixel"]
    if warmup_rounds > 0 and not pixel:
        raise ValueError("FedST warm-up needs at least one pixel client; set warmup_rounds to 0 otherwise")
    return pixel if server_round <= warmup_rounds else list(clients)




def check_warmup(settings: RunSettings) -> None:
    """Refuse a FedST run whose warm-up could train nobody (no pixel client)."""
    if settings.warmup_rounds > 0 and settings.clients and "pixel" not in settings.client_supervision.values():
        raise ValueError("FedST warm-up needs at least one pixel client; set warmup_rounds to 0 otherwise")
