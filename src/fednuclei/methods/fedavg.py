"""FedAvg's client side, which is also every method's training on ground truth.

Each round every client starts from the global weights and trains ``local_epochs`` epochs on its
pixel-labelled patches; the server averages the weights by training-set size
(:func:`~fednuclei.methods.aggregation.size_weights`). The mixed-supervision methods train their
``pixel`` clients the same way (FedMix: both models), never on pseudo-labels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from fednuclei.data.tiles import Tile
from fednuclei.methods.client_data import ClientData
from fednuclei.methods.common import LocalResult
from fednuclei.model.training import train_epochs
from fednuclei.run_settings import RunSettings


def train_supervised(model: torch.nn.Module, tiles: Sequence[Tile], settings: RunSettings, device: torch.device,
                     seed: int) -> LocalResult:
    """``local_epochs`` of :func:`~fednuclei.model.training.train_epochs` on the tiles' pixel masks;
    every tile is usable. No tile: nothing trains (0 usable images, NaN loss).

    Raises:
        ValueError: a tile without instance labels, named (a weak client's tile must never get here).
    """
    start = time.perf_counter()
    if not tiles:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    result = train_epochs(model, list(tiles), epochs=settings.local_epochs, batch_size=settings.batch_size,
                          lr=settings.lr, device=device, seed=seed)
    return LocalResult(usable_images=len(tiles), loss=result.loss, seconds=time.perf_counter() - start)


def fedavg_local_training(models: Sequence[torch.nn.Module], data: ClientData, settings: RunSettings,
                          device: torch.device, seed: int) -> LocalResult:
    """FedAvg at one client: the global model trains on the client's pixel masks; a client
    without them (``bbox``, ``points``, ``none``) does not train and gets weight 0."""
    (model,) = models
    return train_supervised(model, [] if data.weak else data.train, settings, device, seed)
