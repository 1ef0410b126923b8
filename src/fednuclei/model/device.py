"""Where a model runs: the device, its mixed precision, and evaluation mode around a prediction."""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

logger = logging.getLogger(__name__)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEPT_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system.

    By default glibc maps every large allocation (a batch, an activation) afresh and unmaps it
    when freed, and trims the heap, so each training step pays the page faults of its tensors
    again; on a small virtual machine that measured 3-5x the compute itself (2.5 against 15
    patches/s at width 8). Keeping up to 1 GiB mapped removes that cost. Other platforms and
    C libraries are left as they are.

    Returns:
        whether the allocator was tuned.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in
               ((_M_MMAP_THRESHOLD, _KEPT_BYTES), (_M_TRIM_THRESHOLD, _KEPT_BYTES), (_M_TOP_PAD, 64 << 20)))


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train and predict on: ``preferred`` if given, else CUDA when available, else
    CPU; the process's allocator is tuned for tensors on the way (:func:`keep_freed_memory`).

    Raises:
        ValueError: a CUDA device is asked for but this torch build or machine has none.
    """
    device = torch.device(preferred) if preferred is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available (torch {torch.__version__})")
    keep_freed_memory()
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
