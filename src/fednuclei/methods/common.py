"""What every method's training shares: the initial model, seeds, validation, a client's report.

Kept apart from the Flower apps (as in Flower's own examples' ``task.py``) so each piece can be
used and tested without a server.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from fednuclei.data.tiles import Tile
from fednuclei.metrics import pixel_metrics
from fednuclei.model.inference import predict_probabilities
from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.training import LossFn
from fednuclei.model.unet import FOREGROUND, UNet
from fednuclei.run_settings import RunSettings


@dataclass(frozen=True)
class LocalResult:
    """What one client's local training reports to the server.

    Attributes:
        usable_images: images it trained on, >= 0: its pixel-labelled patches for a supervised
            client, the images its pseudo-labels kept otherwise; 0: it did not train.
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
class LocalRound:
    """What one client trains with in one round, besides its data and the run's settings.

    Attributes:
        seed: shuffles its patches (and draws their flips and perturbations).
        lr: the round's learning rate (:func:`round_lr`).
        references: per global model (the main one first), the FedProx reference weights in
            ``model.parameters()`` order, or none (no proximal term).
    """

    seed: int
    lr: float
    references: tuple[list[torch.Tensor] | None, ...] = ()

    def reference(self, index: int) -> list[torch.Tensor] | None:
        """The reference weights of global model ``index`` (0: the main one), or None."""
        return self.references[index] if index < len(self.references) else None


def build_model(settings: RunSettings, which: int = 1) -> UNet:
    """An initial global model, the same for the same ``settings.seed``.

    Args:
        which: 1 for the (main) global model of every method; k > 1 for a method's k-th model,
            whose initialisation differs (FedMix's second; its seed is derived from ``settings.seed``).
    """
    if which < 1:
        raise ValueError(f"which counts models from 1, got {which}")
    seed = settings.seed if which == 1 else derived_seed(settings.seed, which)
    torch.manual_seed(seed)
    return UNet(in_channels=3, out_channels=2, width=settings.width, depth=settings.depth, groups=settings.groups)


def derived_seed(seed: int, stream: int = 1) -> int:
    """Another seed from ``seed``, fixed for a given ``(seed, stream)`` (FedMix's model 2, the
    gamma draws of self-training)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def local_seed(settings: RunSettings, server_round: int, client: str) -> int:
    """Shuffling seed of one client in one round: differs across clients and rounds, and is the
    same when a round is run again (a resumed run redoes an unfinished round identically)."""
    return int(np.random.SeedSequence([settings.seed, server_round, zlib.crc32(client.encode())]).generate_state(1)[0])


def round_lr(settings: RunSettings, server_round: int) -> float:
    """The learning rate of round ``server_round`` (>= 1) under ``settings.lr_schedule``: ``lr``
    every round, or a cosine decay from ``lr`` in round 1 towards 0 after the last round."""
    if settings.lr_schedule == "constant":
        return settings.lr
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * (server_round - 1) / settings.num_server_rounds))


def contour_weighted_loss(settings: RunSettings) -> LossFn:
    """:func:`~fednuclei.model.losses.dice_bce_loss` with the run's weight on the contour channel."""
    if settings.contour_weight == 1.0:
        return dice_bce_loss
    return partial(dice_bce_loss, channel_weights=(1.0, settings.contour_weight))


def proximal(settings: RunSettings, reference: list[torch.Tensor] | None) -> dict:
    """The FedProx arguments of :func:`~fednuclei.model.training.fit`: the reference and the
    run's strength when there is a reference, nothing otherwise."""
    return {"proximal_to": reference, "mu": settings.proximal_mu} if reference is not None else {}


def validation_dice(model: torch.nn.Module, tiles: list[Tile], settings: RunSettings,
                    device: torch.device) -> list[float]:
    """Pixel Dice of each whole tile: foreground probability > 0.5 against ``instances > 0``,
    predicted with sliding windows at native resolution."""
    scores = []
    for tile in tiles:
        probs = predict_probabilities(model, tile.image, patch=settings.infer_patch, overlap=settings.infer_overlap,
                                      device=device)
        scores.append(pixel_metrics(probs[FOREGROUND] > 0.5, tile.instances)["dice"])
    return scores
