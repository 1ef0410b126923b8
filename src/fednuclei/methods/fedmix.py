"""FedMix (Wicaksana et al., IEEE TMI 2023): local training and adaptive aggregation.

Two global models are trained side by side. Each round, at a client without pixel masks
(``bbox``, ``points`` or ``none``), both models predict every training patch;
:func:`cross_supervision` keeps the images where they agree (and where the weak labels confirm
them, :mod:`fednuclei.methods.pseudo_labels`) and wires the targets crosswise: model 1 trains on
the pseudo-labels of model 2 and model 2 on those of model 1. ``pixel`` clients train both
models on their ground truth, never on pseudo-labels.

What the client reports: its *usable images* (every masked patch of a pixel client, the selected
images otherwise) and the mean of the two models' last-epoch losses. A client with no usable
image does not train and gets weight 0. The server weighs the clients that trained with
:func:`fedmix_weights`. Weak clients' code paths read ``Tile.image``, ``Tile.boxes`` and
``Tile.points`` only, never ``Tile.instances``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fednuclei.data.tiles import Tile
from fednuclei.methods.aggregation import ClientReport, spread_over, trained_reports
from fednuclei.methods.client_data import ClientData
from fednuclei.methods.common import LocalResult, LocalRound, contour_weighted_loss, derived_seed, proximal
from fednuclei.methods.fedavg import train_supervised
from fednuclei.methods.pseudo_labels import (
    PseudoLabelRule,
    pseudo_instances,
    require_weak_supervision,
    select_pseudo_labels,
)
from fednuclei.model.batches import TrainingPatches, require_one_size
from fednuclei.model.device import evaluating
from fednuclei.model.targets import segmentation_targets
from fednuclei.model.training import TrainResult, train_epochs
from fednuclei.model.unet import FOREGROUND, image_to_tensor
from fednuclei.run_settings import RunSettings

Pair = tuple[np.ndarray, np.ndarray]

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


def pseudo_label_targets(mask: np.ndarray, contour_width: int = 1) -> np.ndarray:
    """(2, H, W) uint8 training target of a binary (H, W) pseudo-label: its 4-connected
    components as instances, through :func:`~fednuclei.model.targets.segmentation_targets`."""
    return segmentation_targets(pseudo_instances(mask), contour_width).astype(np.uint8)


def cross_supervision(tiles: Sequence[Tile], probs_1: np.ndarray, probs_2: np.ndarray, supervision: str,
                      rule: PseudoLabelRule, contour_width: int = 1) -> CrossSupervision:
    """Which images each FedMix model trains on at a weak client, and with which targets.

    Pure: the same predictions give the same wiring. Reads each tile's ``image`` and, by
    supervision, its ``boxes`` (bbox) or ``points`` (points); never ``instances``.

    Args:
        tiles: the client's training patches, N of them.
        probs_1, probs_2: (N, H, W) foreground probabilities in [0, 1] of model 1 and model 2 on
            those patches (from :func:`predict_foreground`).
        supervision: ``bbox``, ``points`` or ``none``.
        rule: the selection thresholds (:meth:`PseudoLabelRule.of` the run's settings).
        contour_width: of the targets' contour channel.

    Returns:
        The selected images and, crosswise, the targets: model 1's from model 2's prediction,
        model 2's from model 1's (see :func:`~fednuclei.methods.pseudo_labels.select_pseudo_labels`).

    Raises:
        ValueError: ``pixel`` or an unknown supervision, or predictions that do not match the tiles.
    """
    require_weak_supervision(supervision)
    if len(probs_1) != len(tiles) or len(probs_2) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(probs_1)} and {len(probs_2)} predictions")
    selected, model_1, model_2 = [], [], []
    for index, (tile, prob_1, prob_2) in enumerate(zip(tiles, probs_1, probs_2)):
        pair = select_pseudo_labels(prob_1, prob_2, supervision, rule,
                                    boxes=tile.boxes if supervision == "bbox" else None,
                                    points=tile.points if supervision == "points" else None)
        if pair is None:
            continue
        selected.append(index)
        model_1.append((tile.image, pseudo_label_targets(pair.target_for_model_1, contour_width)))
        model_2.append((tile.image, pseudo_label_targets(pair.target_for_model_2, contour_width)))
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
    require_one_size([tile.image.shape[:2] for tile in tiles])
    if not tiles:
        return np.zeros((0, 0, 0), np.float32)
    chunks = []
    with evaluating(model, device):
        for start in range(0, len(tiles), batch_size):
            images = torch.stack([image_to_tensor(t.image) for t in tiles[start:start + batch_size]]).to(device)
            chunks.append(torch.sigmoid(model(images)[:, FOREGROUND].float()).cpu().numpy())
    return np.concatenate(chunks)


def fedmix_local_training(models: Sequence[torch.nn.Module], data: ClientData, settings: RunSettings,
                          device: torch.device, local: LocalRound) -> LocalResult:
    """One FedMix round at one client: both global models trained in place.

    ``pixel``: both models train on the ground truth. Otherwise both predict every patch,
    :func:`cross_supervision` selects and wires the pseudo-labels (:func:`select_for_fedmix`),
    and each model trains on its own targets; with no selected image neither model trains.

    Returns:
        usable images (all masked patches for a pixel client, the selected ones otherwise) and
        the mean of the two models' last-epoch losses.
    """
    model_1, model_2 = models
    start = time.perf_counter()
    if data.supervision == "pixel":
        first = train_supervised(model_1, data, settings, device, local.seed, local.lr, local.reference(0))
        second = train_supervised(model_2, data, settings, device, derived_seed(local.seed), local.lr,
                                  local.reference(1))
        return LocalResult(usable_images=first.usable_images, loss=(first.loss + second.loss) / 2,
                           seconds=time.perf_counter() - start)
    wiring = select_for_fedmix(model_1, model_2, data.train, data.supervision, settings, device)
    if not wiring.usable_images:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    first = train_on_pairs(model_1, wiring.model_1, settings, device, local.seed, local.lr, local.reference(0))
    second = train_on_pairs(model_2, wiring.model_2, settings, device, derived_seed(local.seed), local.lr,
                            local.reference(1))
    return LocalResult(usable_images=wiring.usable_images, loss=(first.loss + second.loss) / 2,
                       seconds=time.perf_counter() - start)


def select_for_fedmix(model_1: torch.nn.Module, model_2: torch.nn.Module, tiles: list[Tile], supervision: str,
                      settings: RunSettings, device: torch.device) -> CrossSupervision:
    """:func:`cross_supervision` of a weak client's patches under the current global models.

    Predicts and selects one batch of ``settings.batch_size`` patches at a time, so only the
    selected images' uint8 targets are kept, never the probability maps of every patch.
    """
    require_one_size([tile.image.shape[:2] for tile in tiles])
    rule = PseudoLabelRule.of(settings)
    selected, pairs_1, pairs_2 = [], [], []
    for start in range(0, len(tiles), settings.batch_size):
        chunk = tiles[start:start + settings.batch_size]
        wiring = cross_supervision(chunk, predict_foreground(model_1, chunk, settings.batch_size, device),
                                   predict_foreground(model_2, chunk, settings.batch_size, device), supervision, rule,
                                   settings.contour_width)
        selected += [start + index for index in wiring.selected]
        pairs_1 += wiring.model_1
        pairs_2 += wiring.model_2
    return CrossSupervision(selected=tuple(selected), model_1=pairs_1, model_2=pairs_2)


def train_on_pairs(model: torch.nn.Module, pairs: list[Pair], settings: RunSettings, device: torch.device,
                   seed: int, lr: float | None = None, reference: list[torch.Tensor] | None = None) -> TrainResult:
    """``local_epochs`` of :func:`~fednuclei.model.training.train_epochs` on ``(image uint8
    (H, W, 3), target (2, H, W))`` pairs, shuffled with ``seed``, at ``lr`` (default
    ``settings.lr``), with a FedProx ``reference`` when given."""
    if not pairs:
        raise ValueError("train_on_pairs needs at least one (image, target) pair")
    images, targets = zip(*pairs)
    return train_epochs(model, TrainingPatches.of(images, targets), epochs=settings.local_epochs,
                        batch_size=settings.batch_size, lr=settings.lr if lr is None else lr, device=device, seed=seed,
                        augment=settings.flip_rotate, loss_fn=contour_weighted_loss(settings),
                        **proximal(settings, reference))


def fedmix_weights(reports: Sequence[ClientReport], lam: float, beta: float) -> dict[str, float]:
    """FedMix's adaptive aggregation weights (Wicaksana et al., IEEE TMI 2023).

    Over the clients that trained: ``d_i = usable_i / sum usable``,
    ``s_i = loss_i**beta / sum_j loss_j**beta`` and ``w_i`` proportional to ``d_i + lam * s_i``,
    normalised to sum 1. Clients with a higher loss get more weight as ``lam`` grows; ``lam = 0``
    is plain size weighting. When every trained client's loss is 0 (with ``beta > 0``), ``s`` is
    0/0: it is taken uniform, the limit of equal losses going to 0.

    Args:
        reports: one per client of the round, unique names.
        lam: weight of the loss term, >= 0.
        beta: loss exponent, >= 0 (0 makes ``s`` uniform).

    Returns:
        name -> weight in [0, 1] for every reported client (0 for those that did not train), or
        ``{}`` when no client trained (the global models then stay as they were).

    Raises:
        ValueError: ``lam`` or ``beta`` negative or not finite, duplicate names, or a trained
            client whose loss is not finite and >= 0.
    """
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    trained = trained_reports(reports)
    if not trained:
        return {}
    for report in trained:
        if not (math.isfinite(report.loss) and report.loss >= 0):
            raise ValueError(f"client {report.name!r} trained but reported loss {report.loss}; "
                             "need a finite loss >= 0")
    sizes = np.array([r.usable_images for r in trained], dtype=np.float64)
    losses = np.array([r.loss for r in trained], dtype=np.float64)
    d = sizes / sizes.sum()
    top = losses.max()
    if top == 0:
        s = np.full(len(trained), 1.0 / len(trained))
    else:
        # Scaling by the largest loss leaves s unchanged and keeps loss**beta from overflowing.
        powered = (losses / top) ** beta
        s = powered / powered.sum()
    w = d + lam * s
    return spread_over(reports, {r.name: float(v) for r, v in zip(trained, w / w.sum())})


