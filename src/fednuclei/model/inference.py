"""Sliding-window prediction over whole tiles at native resolution."""

from __future__ import annotations

import numpy as np
import torch

from fednuclei.data.patches import patch_origins
from fednuclei.model.device import evaluating
from fednuclei.model.unet import image_to_tensor

# Window weight: a Gaussian of sigma = patch / 8 (as nnU-Net), so a pixel near a window's edge,
# where the network lacks context, counts little next to the window that holds it near its centre.
_SIGMA_FRACTION = 1.0 / 8.0


def blend_window(patch: int) -> torch.Tensor:
    """(patch, patch) float32 Gaussian weights, 1 at the centre, > 0 everywhere."""
    centre = (patch - 1) / 2.0
    offsets = (torch.arange(patch, dtype=torch.float64) - centre) / (patch * _SIGMA_FRACTION)
    profile = torch.exp(-0.5 * offsets**2)
    return torch.outer(profile, profile).float()


def _window_origins(height: int, width: int, patch: int, overlap: float) -> list[tuple[int, int]]:
    stride = max(1, round(patch * (1.0 - overlap)))
    return [(y, x) for y in patch_origins(height, patch, stride) for x in patch_origins(width, patch, stride)]


def predict_probabilities(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    patch: int = 256,
    overlap: float = 0.25,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    tta: bool = False,
) -> np.ndarray:
    """Foreground and contour probabilities of a whole image.

    Windows of ``patch`` px overlapping by ``overlap`` (the last one flush with the far edge) are
    predicted in batches and blended with :func:`blend_window` weights. An image smaller than a patch
    is padded (reflect) up to it and the result cropped back. An image of exactly one patch is one
    window: the result is ``sigmoid(model(x))`` itself.

    Args:
        model: a two-channel :class:`~fednuclei.model.unet.UNet` (any module mapping
            (N, 3, p, p) to (N, C, p, p) logits works). Moved to ``device``; its train/eval mode is
            restored afterwards.
        image: (H, W, 3) uint8 RGB.
        patch: window side in px; a multiple of ``2**depth`` avoids the model's own padding.
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        batch_size: windows per forward pass.
        device: where to run; default, where the model's parameters are (see
            :func:`~fednuclei.model.device.evaluating` for precision).
        tta: average each window's prediction over the 8 symmetries of the square (flips and
            90-degree rotations, each undone on its output): 8 forward passes per window.

    Returns:
        (C, H, W) float32 in [0, 1]; C = 2 for the UNet (foreground, contour).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if patch < 1 or batch_size < 1:
        raise ValueError(f"patch and batch_size must be >= 1, got {patch} and {batch_size}")
    height, width = image.shape[:2]
    # numpy's reflect, unlike torch's, also pads by more than the image side
    padded = np.pad(image, ((0, max(0, patch - height)), (0, max(0, patch - width)), (0, 0)), mode="reflect")
    pixels = image_to_tensor(padded)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    window = blend_window(patch)
    origins = _window_origins(pixels.shape[1], pixels.shape[2], patch, overlap)
    total = weights = None
    with evaluating(model, device):
        for start in range(0, len(origins), batch_size):
            chunk = origins[start : start + batch_size]
            batch = torch.stack([pixels[:, y : y + patch, x : x + patch] for y, x in chunk]).to(device)
            probs = (_symmetric_mean(model, batch) if tta else torch.sigmoid(model(batch).float())).cpu()
            if total is None:
                total = torch.zeros((probs.shape[1], *pixels.shape[1:]))
                weights = torch.zeros(pixels.shape[1:])
            for (y, x), prob in zip(chunk, probs):
                total[:, y : y + patch, x : x + patch] += prob * window
                weights[y : y + patch, x : x + patch] += window
    return (total / weights)[:, :height, :width].numpy()


def _symmetric_mean(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean sigmoid output over the 8 symmetries of square windows, each mapped back."""
    total = torch.zeros(())
    for transpose in (False, True):
        for dims in ((), (-1,), (-2,), (-2, -1)):
            view = batch.transpose(-1, -2) if transpose else batch
            view = view.flip(dims) if dims else view
            probs = torch.sigmoid(model(view).float())
            probs = probs.flip(dims) if dims else probs
            total = total + (probs.transpose(-1, -2) if transpose else probs)
    return total / 8
