"""The non-federated references, on the same budget as a federated run.

A federated run of R rounds x E local epochs shows every training patch R x E times; so do
these: centralized training on the pooled patches, and local training of each client alone (the
lower bound, and the models of the cross-site matrix). Both validate after every block of E
epochs and keep the block with the best mean validation Dice, as the federated server does.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import numpy as np
import torch

from fednuclei.data.tiles import Tile
from fednuclei.methods.client_data import load_client_data
from fednuclei.methods.common import build_model, contour_weighted_loss, local_seed, round_lr, validation_dice
from fednuclei.model.batches import TrainingPatches
from fednuclei.model.training import train_epochs
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)


def train_with_validation(
    train: list[Tile], val: list[Tile], settings: RunSettings, device: torch.device, *, label: str
) -> tuple[UNet, list[dict]]:
    """Train one model for ``settings.num_server_rounds`` blocks of ``settings.local_epochs`` epochs.

    Args:
        train: pixel-labelled patches.
        val: whole validation tiles with instances (none: the last block is kept).
        label: names the run in logs and history, and seeds its shuffling.

    Returns:
        the model of the best block by mean validation Dice, and one history row per block
        (round, train_loss, val_dice, train_seconds).
    """
    model = build_model(settings)
    patches = TrainingPatches.labelled(train, settings.contour_width)  # targets once, for every block
    best_dice, best_state, history, optimizer_state = -math.inf, None, [], None
    for block in range(1, settings.num_server_rounds + 1):
        result = train_epochs(
            model, patches, epochs=settings.local_epochs, batch_size=settings.batch_size,
            lr=round_lr(settings, block), device=device, seed=local_seed(settings, block, label),
            augment=settings.flip_rotate, loss_fn=contour_weighted_loss(settings), optimizer_state=optimizer_state,
        )
        optimizer_state = result.optimizer_state
        dice = float(np.mean(validation_dice(model, val, settings, device))) if val else math.nan
        history.append({"run": label, "round": block, "train_loss": result.loss, "val_dice": dice,
                        "train_seconds": result.seconds})
        logger.info("%s: round %d/%d, loss %.4f, val Dice %.4f", label, block, settings.num_server_rounds, result.loss, dice)
        if not val or dice > best_dice:
            best_dice, best_state = dice, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model, history


def train_centralized(
    train_by_client: dict[str, list[Tile]], val_by_client: dict[str, list[Tile]], settings: RunSettings,
    device: torch.device,
) -> tuple[UNet, list[dict]]:
    """One model on every client's patches pooled (the upper bound a federation aims at)."""
    pooled = [tile for tiles in train_by_client.values() for tile in tiles]
    val = [tile for tiles in val_by_client.values() for tile in tiles]
    return train_with_validation(pooled, val, settings, device, label="centralized")


def train_local(
    train_by_client: dict[str, list[Tile]], val_by_client: dict[str, list[Tile]], settings: RunSettings,
    device: torch.device,
) -> tuple[dict[str, UNet], list[dict]]:
    """One model per client on its own patches (clients without labelled patches get none)."""
    models, history = {}, []
    for client, train in train_by_client.items():
        if not train:
            logger.info("local: client %s has no pixel-labelled patch, no model", client)
            continue
        models[client], rows = train_with_validation(train, val_by_client.get(client, []), settings, device, label=client)
        history.extend(rows)
    return models, history


def labelled_client_tiles(settings: RunSettings, base: Path) -> tuple[dict[str, list[Tile]], dict[str, list[Tile]]]:
    """Each client's pixel-labelled training patches (none for a weak client) and validation
    tiles, read from under ``base`` exactly as a Flower client reads them."""
    data = [load_client_data(client, base, settings) for client in settings.clients]
    return {d.name: [] if d.weak else d.train for d in data}, {d.name: d.val for d in data}
