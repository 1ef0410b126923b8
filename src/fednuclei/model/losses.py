"""Soft Dice + BCE loss with an optional mask of valid pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Additive smoothing of the Dice ratio: a channel with no positive pixel gives Dice loss 0, not NaN.
_DICE_SMOOTH = 1.0


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                  channel_weights: Sequence[float] | None = None) -> torch.Tensor | None:
    """Mean over channels of (binary cross-entropy + soft Dice loss).

    Args:
        logits: (N, C, H, W) raw model outputs (any float dtype; computed in float32).
        target: (N, C, H, W) in [0, 1].
        mask: optional per-pixel weights in [0, 1] (bool or float), broadcastable to ``logits``:
            (N, 1, H, W), (N, C, H, W), or (N, H, W). Only weighted pixels count: BCE is the
            weighted mean over them and Dice is computed on ``probability * mask`` and
            ``target * mask``. Fractional weights serve confidence-weighted self-training.
        channel_weights: C weights > 0 of the channels in the mean (default: equal).

    Returns:
        A scalar tensor; or None when ``mask`` has no valid pixel, so the caller skips the batch
        (a zero tensor would still cost a backward pass and count as a step of loss 0).

    Dice sums over the whole batch per channel (not per image), so an image with no nucleus does not
    make the Dice term jump to 1.
    """
    logits = logits.float()
    target = target.float()
    dims = (0, 2, 3)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    probs = torch.sigmoid(logits)
    if mask is None:
        bce = bce.mean(dims)
    else:
        if mask.dim() == logits.dim() - 1:
            mask = mask.unsqueeze(1)
        weight = mask.to(logits.dtype).expand_as(logits)
        if not bool(weight.any()):
            return None
        # clamp: a channel whose (N, C, H, W) mask is empty contributes 0 instead of 0 / 0
        bce = (bce * weight).sum(dims) / weight.sum(dims).clamp_min(1e-6)
        probs, target = probs * weight, target * weight
    overlap = (probs * target).sum(dims)
    dice = 1.0 - (2.0 * overlap + _DICE_SMOOTH) / (probs.sum(dims) + target.sum(dims) + _DICE_SMOOTH)
    if channel_weights is None:
        return (bce + dice).mean()
    weights = torch.as_tensor(channel_weights, dtype=bce.dtype, device=bce.device)
    return ((bce + dice) * weights).sum() / weights.sum()
