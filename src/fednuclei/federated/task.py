"""The model side of a federated round: build the global U-Net, train locally, validate.

Kept apart from the Flower apps (as in Flower's own examples' ``task.py``) so each piece can be
used and tested without a server.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from fednuclei.data.tiles import Tile
from fednuclei.federated.settings import FederatedSettings
from fednuclei.metrics import pixel_metrics
from fednuclei.model.inference import predict_probabilities
from fednuclei.model.unet import FOREGROUND, UNet


def build_model(settings: FederatedSettings, which: int = 1) -> UNet:
    """An initial global model, the same for the same ``settings.seed``.

    Args:
        which: 1 for the global model of every method; 2 for FedMix's second model, whose
            initialisation differs (its seed is derived from ``settings.seed``).
    """
    if which not in (1, 2):
        raise ValueError(f"which must be 1 or 2, got {which}")
    seed = settings.seed if which == 1 else int(np.random.SeedSequence([settings.seed, which]).generate_state(1)[0])
    torch.manual_seed(seed)
    return UNet(in_channels=3, out_channels=2, width=settings.width, depth=settings.depth, groups=settings.groups)


def local_seed(settings: FederatedSettings, server_round: int, client: str) -> int:
    """Shuffling seed of one client in one round: differs across clients and rounds, and is the
    same when a round is run again (a resumed run redoes an unfinished round identically)."""
    return int(np.random.SeedSequence([settings.seed, server_round, zlib.crc32(client.encode())]).generate_state(1)[0])


def validation_dice(model: torch.nn.Module, tiles: list[Tile], settings: FederatedSettings,
                    device: torch.device) -> list[float]:
    """Pixel Dice of each whole tile: foreground probability > 0.5 against ``instances > 0``,
    predicted with sliding windows at native resolution."""
    scores = []
    for tile in tiles:
        probs = predict_probabilities(model, tile.image, patch=settings.infer_patch, overlap=settings.infer_overlap,
                                      device=device)
        scores.append(pixel_metrics(probs[FOREGROUND] > 0.5, tile.instances)["dice"])
    return scores
