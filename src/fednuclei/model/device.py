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


def half_precision(device: torch.device) -> torch.dtype | None:
    """The reduced precision forward passes run in on ``device``: bfloat16 on a GPU that has it
    (no gradient scaling needed), else float16 on CUDA; None (plain float32) on the CPU, where
    reduced precision is slower, not faster."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device) -> torch.autocast:
    """Mixed precision for forward passes in :func:`half_precision`."""
    dtype = half_precision(device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def gradient_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only where the precision needs one (float16)."""
    return torch.amp.GradScaler(device.type, enabled=half_precision(device) == torch.float16)


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
