"""Where a model runs: the device, its mixed precision, and evaluation mode around a prediction."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

logger = logging.getLogger(__name__)


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train and predict on: ``preferred`` if given, else CUDA when available, else CPU.

    Raises:
        ValueError: a CUDA device is asked for but this torch build or machine has none.
    """
    device = torch.device(preferred) if preferred is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available (torch {torch.__version__})")
    logger.info("using device %s", device)
    return device


def autocast(device: torch.device) -> torch.autocast:
    """Mixed precision for forward passes: float16 on CUDA, plain float32 elsewhere."""
    return torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda")


@contextmanager
def evaluating(model: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """Predict with ``model`` on ``device``: eval mode, no gradients, :func:`autocast`; the model's
    train/eval mode is restored afterwards (a client predicts pseudo-labels between training steps)."""
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.no_grad(), autocast(device):
            yield model
    finally:
        model.train(was_training)
