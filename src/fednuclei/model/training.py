"""One training loop for every method.

:func:`fit` is the loop: Adam (optionally resuming its moments), a gradient scaler where the
precision needs one, and ``epochs`` passes of :func:`train_on_batches` (forward, loss, optional
FedProx term, backward, step). Every flavour of local training calls it with its own batches:
:func:`train_epochs` with pixel-labelled patches, FedMix with pseudo-labelled ones, FedST with
confidence-masked batches.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from fednuclei.model.batches import Batch, TrainingPatches
from fednuclei.model.device import autocast, gradient_scaler
from fednuclei.model.losses import dice_bce_loss

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor | None]


@dataclass
class TrainResult:
    """What :func:`fit` reports.

    Attributes:
        loss: mean loss of the last epoch's stepped batches (the data loss, without the proximal
            term); NaN when every batch of that epoch was skipped.
        n_samples: samples in the last epoch's stepped batches.
        seconds: wall time of the whole call.
        steps: optimizer steps taken over all epochs (skipped batches excluded).
        skipped: batches skipped over all epochs because the loss returned None.
        optimizer_state: Adam's state after training, to pass back as ``optimizer_state`` next time.
    """

    loss: float
    n_samples: int
    seconds: float
    steps: int
    skipped: int = 0
    optimizer_state: dict | None = field(default=None, repr=False)


@dataclass
class BatchesResult:
    """What :func:`train_on_batches` reports: mean data loss over the batches stepped on (NaN if
    none), optimizer steps, skipped batches and samples in the stepped batches."""

    loss: float
    steps: int
    skipped: int
    n_samples: int


def _proximal_term(model: torch.nn.Module, reference: list[torch.Tensor], mu: float) -> torch.Tensor:
    """mu / 2 * sum ||w - w_ref||^2 over the parameters (FedProx)."""
    total = sum(((p.float() - r) ** 2).sum() for p, r in zip(model.parameters(), reference))
    return 0.5 * mu * total


def _prepare_reference(model: torch.nn.Module, proximal_to: Sequence[torch.Tensor] | None,
                       device: torch.device) -> list[torch.Tensor] | None:
    if proximal_to is None:
        return None
    params = list(model.parameters())
    shapes = [tuple(p.shape) for p in params]
    given = [tuple(r.shape) for r in proximal_to]
    if given != shapes:
        raise ValueError(
            f"proximal_to must hold {len(shapes)} tensors shaped like model.parameters(), in that order; "
            f"got {len(given)} tensors that do not match"
        )
    return [torch.as_tensor(r).detach().to(device, torch.float32) for r in proximal_to]


def train_on_batches(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: LossFn = dice_bce_loss,
    scaler: torch.amp.GradScaler | None = None,
    proximal_to: Sequence[torch.Tensor] | None = None,
    mu: float = 0.0,
) -> BatchesResult:
    """One pass of training steps, one per batch; the model is put in train mode.

    Args:
        model: on ``device``.
        batches: ``(images (N, 3, H, W) float in [0, 1], targets (N, C, H, W), mask or None)``;
            the mask (see :func:`~fednuclei.model.losses.dice_bce_loss`) is passed to ``loss_fn``.
            A batch whose loss is None is skipped and counted.
        optimizer: over ``model.parameters()``.
        device: where the model is; batches are moved there. Forward passes run under
            :func:`~fednuclei.model.device.autocast`, with gradient scaling where its precision
            needs it (float16).
        loss_fn: ``(logits, targets, mask) -> scalar tensor or None``.
        scaler: the GradScaler to use; pass the same one to every call of a training run so its
            scale carries over (a new one is made when None).
        proximal_to: FedProx reference weights in ``model.parameters()`` order; adds
            ``mu / 2 * ||w - w_ref||^2`` to each step's loss (not to the reported loss).
        mu: proximal strength, >= 0.
    """
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    if scaler is None:
        scaler = gradient_scaler(device)
    reference = _prepare_reference(model, proximal_to, device) if mu > 0 else None
    model.train()
    total = torch.zeros((), device=device)  # summed on the device: no host sync per step
    steps = skipped = samples = 0
    for images, targets, mask in batches:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        mask = None if mask is None else mask.to(device, non_blocking=True)
        with autocast(device):
            logits = model(images)
        loss = loss_fn(logits, targets, mask)
        if loss is None:
            skipped += 1
            continue
        objective = loss if reference is None else loss + _proximal_term(model, reference, mu)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach()
        steps += 1
        samples += len(images)
    if skipped:
        logger.debug("skipped %d of %d batches: their loss had no valid pixel", skipped, skipped + steps)
    mean = float(total) / steps if steps else math.nan
    return BatchesResult(loss=mean, steps=steps, skipped=skipped, n_samples=samples)


def fit(
    model: torch.nn.Module,
    batches: Callable[[int], Iterable[Batch]],
    *,
    epochs: int,
    lr: float,
    device: torch.device,
    optimizer_state: dict | None = None,
    loss_fn: LossFn = dice_bce_loss,
    proximal_to: Sequence[torch.Tensor] | None = None,
    mu: float = 0.0,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place: ``epochs`` passes of :func:`train_on_batches` with one Adam
    optimizer and one gradient scaler.

    Args:
        model: moved to ``device``.
        batches: ``batches(epoch)`` gives that epoch's batches (epoch counts from 0).
        epochs: passes, >= 1.
        lr: Adam learning rate; it overrides the one stored in ``optimizer_state``.
        optimizer_state: ``TrainResult.optimizer_state`` of an earlier call, to resume Adam's moments.
        loss_fn, proximal_to, mu: see :func:`train_on_batches`.
        progress: show a tqdm bar over epochs.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    start = time.perf_counter()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = lr
    scaler = gradient_scaler(device)
    steps = skipped = 0
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress):
        result = train_on_batches(model, batches(epoch), optimizer, device, loss_fn=loss_fn, scaler=scaler,
                                  proximal_to=proximal_to, mu=mu)
        steps, skipped = steps + result.steps, skipped + result.skipped
        logger.debug("epoch %d/%d: loss %.4f", epoch + 1, epochs, result.loss)
    return TrainResult(loss=result.loss, n_samples=result.n_samples, seconds=time.perf_counter() - start,
                       steps=steps, skipped=skipped, optimizer_state=optimizer.state_dict())


def train_epochs(
    model: torch.nn.Module,
    patches: TrainingPatches,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    seed: int = 0,
    augment: bool = False,
    optimizer_state: dict | None = None,
    proximal_to: Sequence[torch.Tensor] | None = None,
    mu: float = 0.0,
    loss_fn: LossFn = dice_bce_loss,
    progress: bool = False,
) -> TrainResult:
    """:func:`fit` on pixel-labelled patches, batched by
    :meth:`~fednuclei.model.batches.TrainingPatches.batches` (shuffled with ``seed``, flipped and
    rotated when ``augment``).

    Args:
        patches: labelled patches (:meth:`~fednuclei.model.batches.TrainingPatches.labelled`).
        batch_size: patches per step; the last batch of an epoch may be smaller.
        epochs, lr, device, optimizer_state, proximal_to, mu, loss_fn, progress: see :func:`fit`.

    Raises:
        ValueError: unlabelled patches, or ``epochs`` / ``batch_size`` < 1.
    """
    if patches.targets is None:
        raise ValueError("train_epochs needs labelled patches (TrainingPatches.labelled)")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    return fit(model, patches.batches(batch_size, seed, device, augment=augment), epochs=epochs, lr=lr, device=device,
               optimizer_state=optimizer_state, loss_fn=loss_fn, proximal_to=proximal_to, mu=mu, progress=progress)
