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

from fednuclei.methods.client_data import ClientData
from fednuclei.methods.common import LocalResult, LocalRound, contour_weighted_loss, proximal
from fednuclei.model.training import train_epochs
from fednuclei.run_settings import RunSettings


def train_supervised(model: torch.nn.Module, data: ClientData, settings: RunSettings, device: torch.device,
                     seed: int, lr: float | None = None, reference: list[torch.Tensor] | None = None) -> LocalResult:
    """``local_epochs`` of :func:`~fednuclei.model.training.train_epochs` on the client's pixel
    masks (:meth:`~fednuclei.methods.client_data.ClientData.labelled_patches`); every patch is
    usable. No patch: nothing trains (0 usable images, NaN loss).

    Args:
        seed: shuffles the patches (and draws their flips).
        lr: this round's learning rate (default ``settings.lr``).
        reference: FedProx reference weights (pulled towards with ``settings.proximal_mu``).

    Raises:
        ValueError: a patch without instance labels, named (a weak client's patch must never get here).
    """
    start = time.perf_counter()
    if not data.train:
        return LocalResult(usable_images=0, loss=math.nan, seconds=time.perf_counter() - start)
    result = train_epochs(model, data.labelled_patches(settings.contour_width), epochs=settings.local_epochs,
                          batch_size=settings.batch_size, lr=settings.lr if lr is None else lr, device=device,
                          seed=seed, augment=settings.flip_rotate, loss_fn=contour_weighted_loss(settings),
                          **proximal(settings, reference))
    return LocalResult(usable_images=len(data.train), loss=result.loss, seconds=time.perf_counter() - start)


def fedavg_local_training(models: Sequence[torch.nn.Module], data: ClientData, settings: RunSettings,
                          device: torch.device, local: LocalRound) -> LocalResult:
    """FedAvg at one client: the global model trains on the client's pixel masks; a client
    without them (``bbox``, ``points``, ``none``) does not train and gets weight 0."""
    (model,) = models
    if data.weak:
        return LocalResult(usable_images=0, loss=math.nan, seconds=0.0)
    return train_supervised(model, data, settings, device, local.seed, local.lr, local.reference(0))
