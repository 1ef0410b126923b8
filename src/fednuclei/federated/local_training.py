"""Local training of FedMix, FedST and FedRGD clients, on the project's one training loop.

Every flavour ends in :func:`fednuclei.model.training.train_on_batches`; only the batches differ:

* ``pixel`` clients train on their ground truth with :func:`~fednuclei.model.training.train_epochs`
  (FedMix: both models, always; never on pseudo-labels);
* FedMix on a weak client (``bbox``, ``points``, ``none``): both current global models predict
  every training patch; :func:`cross_supervision` keeps the images where they agree (and where the
  weak labels confirm them) and wires the targets crosswise: model 1 trains on the pseudo-labels
  of model 2 and model 2 on those of model 1;
* FedST / FedRGD on a weak client: :func:`self_train`, per batch, turns the current model's
  confident pixels into targets for the same model on a gamma-perturbed copy of the batch.

What counts as the client's *usable images* (the size term of the server's weights) and its
*loss*:

* pixel client: every training patch; the last epoch's mean loss (FedMix: the mean of the two
  models' last-epoch losses);
* FedMix weak client: the images selected this round; the mean of the two models' last-epoch
  losses (both models train on the same selected images, so each loss covers the same data);
* FedST / FedRGD weak client: the images that had at least one confident pixel (in either output
  channel) in the last epoch, i.e. the images that contributed to the reported loss; the last
  epoch's mean loss over the batches that had a confident pixel.

A client with no usable image does not train (FedMix) or trains to no effect (every self-training
batch skipped); it reports 0 usable images and a NaN loss, and the server gives it weight 0.

Weak clients' code paths read ``Tile.image``, ``Tile.boxes`` and ``Tile.points`` only, never
``Tile.instances``; the pixel path refuses a tile without instances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fednuclei.data.tiles import SUPERVISION_LEVELS, Tile
from fednuclei.federated.pseudo_labels import (
    PseudoLabelRule,
    confidence_mask,
    gamma_perturb,
    pseudo_instances,
    require_weak_supervision,
    sample_gamma,
    select_pseudo_labels,
)
from fednuclei.federated.settings import FederatedSettings
from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.targets import segmentation_targets
from fednuclei.model.training import Batch, BatchesResult, require_one_size, train_epochs, train_on_batches
from fednuclei.model.unet import FOREGROUND, image_to_tensor

Pair = tuple[np.ndarray, np.ndarray]

DEFAULT_RULE = PseudoLabelRule()


@dataclass(frozen=True)
class LocalResult:
    """What one client's local training reports to the server.

    Attributes:
        usable_images: images it trained on (see the module docstring), >= 0; 0: it did not train.
        loss: its last local training loss, >= 0; NaN when it did not train.
        seconds: wall time of the local training, prediction included.
    """

    usable_images: int
    loss: float
    seconds: float

    @property
    def trained(self) -> bool:
        return self.usable_images > 0


@dataclass(frozen=True)
class CrossSupervision:
    """FedMix's cross pseudo-supervision of one weak client in one round.

    Attributes:
        selected: indices of the kept images in the client's tile list, in tile order.
        model_1: what model 1 trains on, one ``(image, target)`` per selected image: the tile's
            (H, W, 3) uint8 image and a (2, H, W) uint8 {0, 1} target (foreground, contour) made
            from **model 2's** refined pseudo-label.
        model_2: the same for model 2, targets from **model 1's** pseudo-label.
    """

    selected: tuple[int, ...]
    model_1: list[Pair]
    model_2: list[Pair]

    @property
    def usable_images(self) -> int:
        return len(self.selected)


def pseudo_label_rule(settings: FederatedSettings) -> PseudoLabelRule:
    """FedMix's image-selection thresholds of the run."""
    return PseudoLabelRule(tau=settings.tau, min_box_fill=settings.min_box_fill,
                           min_covered_boxes=settings.min_covered_boxes)


def pseudo_label_targets(mask: np.ndarray) -> np.ndarray:
    """(2, H, W) uint8 training target of a binary (H, W) pseudo-label: its 4-connected
    components as instances, through :func:`~fednuclei.model.targets.segmentation_targets`."""
    return segmentation_targets(pseudo_instances(mask)).astype(np.uint8)


def cross_supervision(tiles: Sequence[Tile], probs_1: np.ndarray, probs_2: np.ndarray, supervision: str,
                      rule: PseudoLabelRule = DEFAULT_RULE) -> CrossSupervision:
    """Which images each FedMix model trains on at a weak client, and with which targets.

    Pure: the same predictions give the same wiring. Reads each tile's ``image`` and, by
    supervision, its ``boxes`` (bbox) or ``points`` (points); never ``instances``.

    Args:
        tiles: the client's training patches, N of them.
        probs_1, probs_2: (N, H, W) foreground probabilities in [0, 1] of model 1 and model 2 on
            those patches (from :func:`predict_foreground`).
        supervision: ``bbox``, ``points`` or ``none``.
        rule: the selection thresholds (:func:`pseudo_label_rule`).

    Returns:
        The selected images and, crosswise, the targets: model 1's from model 2's prediction,
        model 2's from model 1's (see :func:`~fednuclei.federated.pseudo_labels.select_pseudo_labels`).

    Raises:
        ValueError: ``pixel`` or an unknown supervision, or predictions that do not match the tiles.
    """
    require_weak_supervision(supervision)
    if len(probs_1) != len(tiles) or len(probs_2) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(probs_1)} and {len(probs_2)} predictions")
    selected, model_1, model_2 = [], [], []
    for index, (tile, prob_1, prob_2) in enumerate(zip(tiles, probs_1, probs_2)):
        pair = select_pseudo_labels(prob_1, prob_2, supervision,
                                    boxes=tile.boxes if supervision == "bbox" else None,
                                    points=tile.points if supervision == "points" else None, rule=rule)
        if pair is None:
            continue
        selected.append(index)
        model_1.append((tile.image, pseudo_label_targets(pair.target_for_model_1)))
        model_2.append((tile.image, pseudo_label_targets(pair.target_for_model_2)))
    return CrossSupervision(selected=tuple(selected), model_1=model_1, model_2=model_2)


def predict_foreground(model: torch.nn.Module, tiles: Sequence[Tile], batch_size: int,
                       device: torch.device) -> np.ndarray:
    """Foreground probabilities of whole patches, batched, in inference mode.

    Args:
        model: moved to ``device``; its train/eval mode is restored afterwards.
        tiles: equal-size patches (only ``image`` is read).
        batch_size: patches per forward pass, >= 1.

    Returns:
        (N, H, W) float32 in [0, 1]: ``sigmoid`` of the foreground channel.
    """
    require_one_size(tiles)
    if not tiles:
        return np.zeros((0, 0, 0), np.float32)
    model.to(device)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(tiles), batch_size):
                images = torch.stack([image_to_tensor(t.image) for t in tiles[start:start + batch_size]]).to(device)
                with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                    logits = model(images)
                chunks.append(torch.sigmoid(logits[:, FOREGROUND].float()).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks)


def train_pixel(model: torch.nn.Module, tiles: list[Tile], settings: FederatedSettings, device: torch.device,
                seed: int) -> LocalResult:
    """Ground-truth training of a ``pixel`` client: ``local_epochs`` of
    :func:`~fednuclei.model.training.train_epochs`; every patch is usable.

    Raises:
        ValueError: a tile without instance labels, named (a weak client's tile must never get here).
    """
    start = time.perf_counter()
    if not tiles:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    result = train_epochs(model, tiles, epochs=settings.local_epochs, batch_size=settings.batch_size, lr=settings.lr,
                          device=device, seed=seed)
    return LocalResult(usable_images=len(tiles), loss=result.loss, seconds=time.perf_counter() - start)


def fedmix_local_training(model_1: torch.nn.Module, model_2: torch.nn.Module, tiles: list[Tile], supervision: str,
                          settings: FederatedSettings, device: torch.device, seed: int) -> LocalResult:
    """One FedMix round at one client: both global models trained in place.

    ``pixel``: both models train on the ground truth. Otherwise both predict every patch,
    :func:`cross_supervision` selects and wires the pseudo-labels (:func:`select_for_fedmix`),
    and each model trains on its own targets; with no selected image neither model trains.

    Returns:
        usable images (all patches for a pixel client, the selected ones otherwise) and the mean
        of the two models' last-epoch losses.
    """
    start = time.perf_counter()
    if supervision == "pixel":
        first = train_pixel(model_1, tiles, settings, device, seed)
        second = train_pixel(model_2, tiles, settings, device, _other_seed(seed))
        return LocalResult(usable_images=first.usable_images, loss=_mean_loss(first.loss, second.loss),
                           seconds=time.perf_counter() - start)
    wiring = select_for_fedmix(model_1, model_2, tiles, supervision, settings, device)
    if not wiring.usable_images:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    first = train_on_pairs(model_1, wiring.model_1, settings, device, seed)
    second = train_on_pairs(model_2, wiring.model_2, settings, device, _other_seed(seed))
    return LocalResult(usable_images=wiring.usable_images, loss=_mean_loss(first.loss, second.loss),
                       seconds=time.perf_counter() - start)


def select_for_fedmix(model_1: torch.nn.Module, model_2: torch.nn.Module, tiles: list[Tile], supervision: str,
                      settings: FederatedSettings, device: torch.device) -> CrossSupervision:
    """:func:`cross_supervision` of a weak client's patches under the current global models.

    Predicts and selects one batch of ``settings.batch_size`` patches at a time, so only the
    selected images' uint8 targets are kept, never the probability maps of every patch.
    """
    require_one_size(tiles)
    rule = pseudo_label_rule(settings)
    selected, pairs_1, pairs_2 = [], [], []
    for start in range(0, len(tiles), settings.batch_size):
        chunk = tiles[start:start + settings.batch_size]
        wiring = cross_supervision(chunk, predict_foreground(model_1, chunk, settings.batch_size, device),
                                   predict_foreground(model_2, chunk, settings.batch_size, device), supervision, rule)
        selected += [start + index for index in wiring.selected]
        pairs_1 += wiring.model_1
        pairs_2 += wiring.model_2
    return CrossSupervision(selected=tuple(selected), model_1=pairs_1, model_2=pairs_2)


def train_on_pairs(model: torch.nn.Module, pairs: list[Pair], settings: FederatedSettings, device: torch.device,
                   seed: int) -> BatchesResult:
    """``local_epochs`` of Adam on ``(image uint8 (H, W, 3), target (2, H, W))`` pairs, shuffled
    with ``seed``; returns the last epoch's :class:`~fednuclei.model.training.BatchesResult`."""
    if not pairs:
        raise ValueError("train_on_pairs needs at least one (image, target) pair")
    loader = DataLoader(_PairDataset(pairs), batch_size=settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")
    return _fit(model, settings, device, lambda epoch: ((images, targets, None) for images, targets in loader))


def fedst_local_training(model: torch.nn.Module, tiles: list[Tile], supervision: str, settings: FederatedSettings,
                         device: torch.device, seed: int) -> LocalResult:
    """One FedST / FedRGD round at one client: ground truth for a ``pixel`` client,
    :func:`self_train` for the others."""
    if supervision == "pixel":
        return train_pixel(model, tiles, settings, device, seed)
    if supervision not in SUPERVISION_LEVELS:
        raise ValueError(f"unknown supervision {supervision!r}; use one of {list(SUPERVISION_LEVELS)}")
    return self_train(model, tiles, settings, device, seed)


def self_train(model: torch.nn.Module, tiles: list[Tile], settings: FederatedSettings, device: torch.device,
               seed: int) -> LocalResult:
    """FedST's self-training on unlabelled patches, ``local_epochs`` passes, model trained in place.

    Per batch: the current model (in eval mode, no gradient) predicts the original patches;
    :func:`~fednuclei.federated.pseudo_labels.confidence_mask` keeps its pixels above
    ``confidence_high`` (target 1) or below ``confidence_low`` (target 0), in both output
    channels; the model then takes one step on a
    :func:`~fednuclei.federated.pseudo_labels.gamma_perturb`-ed copy (one gamma per batch, drawn
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
    require_one_size(tiles)
    loader = DataLoader(_ImageDataset(tiles), batch_size=settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")
    gammas = torch.Generator().manual_seed(_other_seed(seed))
    confident = [0] * settings.local_epochs

    def batches(epoch: int) -> Iterable[Batch]:
        for images in loader:
            images = images.to(device, non_blocking=True)
            target, valid = _confident_targets(model, images, settings)
            confident[epoch] += int(valid.flatten(1).any(1).sum())
            yield gamma_perturb(images, sample_gamma(gammas, settings.gamma_low, settings.gamma_high)), target, valid

    result = _fit(model, settings, device, batches)
    # A batch is stepped exactly when one of its images has a confident pixel, so usable > 0
    # exactly when the last epoch's loss is a number.
    usable = confident[-1]
    return LocalResult(usable_images=usable, loss=result.loss if usable else math.nan,
                       seconds=time.perf_counter() - start)


def _confident_targets(model: torch.nn.Module, images: torch.Tensor,
                       settings: FederatedSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The current model's confident pixels on ``images``: (target, valid), both (N, C, H, W)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(images.device.type, dtype=torch.float16,
                                             enabled=images.device.type == "cuda"):
            probs = torch.sigmoid(model(images).float())
    finally:
        model.train(was_training)
    return confidence_mask(probs, high=settings.confidence_high, low=settings.confidence_low)


def _fit(model: torch.nn.Module, settings: FederatedSettings, device: torch.device,
         batches: Callable[[int], Iterable[Batch]]) -> BatchesResult:
    """``local_epochs`` passes of :func:`train_on_batches` with one Adam optimizer and grad
    scaler; ``batches(epoch)`` gives an epoch's batches. Returns the last epoch's result."""
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    result = None
    for epoch in range(settings.local_epochs):
        result = train_on_batches(model, batches(epoch), optimizer, device, loss_fn=dice_bce_loss, scaler=scaler)
    return result


class _PairDataset(Dataset):
    """(image (3, H, W) float32 in [0, 1], target (2, H, W) float32) from uint8 pairs."""

    def __init__(self, pairs: list[Pair]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.pairs[index]
        return image_to_tensor(image), torch.from_numpy(np.asarray(target)).float()


class _ImageDataset(Dataset):
    """The patches' images only, (3, H, W) float32 in [0, 1]; labels are never read."""

    def __init__(self, tiles: Sequence[Tile]):
        self.images = [tile.image for tile in tiles]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return image_to_tensor(self.images[index])


def _other_seed(seed: int) -> int:
    """A second seed from ``seed`` (FedMix's model 2, the gamma draws), fixed for a given seed."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def _mean_loss(first: float, second: float) -> float:
    return (first + second) / 2
