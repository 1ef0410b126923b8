"""A small classic U-Net for nuclei, and the image-to-tensor convention it expects.

Output channels (logits):

* 0, **foreground**: the pixel belongs to a nucleus;
* 1, **contour**: the pixel lies on a nucleus's inner boundary (see :mod:`fednuclei.model.targets`).

The contour channel is what separates touching nuclei: foreground minus contour leaves one seed per
nucleus, and a watershed from those seeds restores the full outlines
(:mod:`fednuclei.model.postprocess`). It is the DCAN / CIA-Net recipe: a second binary head, trained
with the same loss as the first, and it costs one output channel. A distance or HoVer map would
also separate nuclei, but needs a regression head and loss of its own.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FOREGROUND, CONTOUR = 0, 1


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """The model's input for one RGB image.

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (3, H, W) float32 in [0, 1]: plain ``/ 255``. No stain mean/std: GroupNorm after the first
        convolution centres and scales the features anyway, and hospitals differ in stain, so
        constants from one dataset would not be a neutral choice.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    # GroupNorm rather than BatchNorm: batches are small and federated averaging of running
    # statistics across hospitals with different stains is ill-defined.
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ConvBlock(nn.Sequential):
    """Two 3x3 conv-GroupNorm-ReLU layers, (N, c_in, H, W) -> (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _norm(c_out, groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            _norm(c_out, groups),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Bilinear x2 upsampling, a 1x1 conv to ``c_out``, concatenation with the skip, a ConvBlock.

    (N, c_in, h, w), skip (N, c_out, 2h, 2w) -> (N, c_out, 2h, 2w).
    """

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, c_out, 1)
        self.block = ConvBlock(2 * c_out, c_out, groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([skip, self.reduce(x)], dim=1))


class UNet(nn.Module):
    """Encoder/decoder with skip connections.

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: output logit channels (2: foreground, contour).
        width: channels of the first level, doubled at each of the ``depth`` levels below it.
        depth: number of 2x max-pool down-sampling steps (>= 1).
        groups: GroupNorm groups; a level with fewer channels, or a count it does not divide,
            uses their greatest common divisor.

    ``forward`` takes (N, in_channels, H, W) of any H, W >= 1: it pads the bottom and right edges
    (reflect) up to multiples of ``2**depth`` and crops the output back, giving
    (N, out_channels, H, W) logits. Multiples of ``2**depth`` skip the padding.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 2, width: int = 16, depth: int = 4, groups: int = 8):
        super().__init__()
        for name, value, minimum in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                     ("width", width, 1), ("depth", depth, 1), ("groups", groups, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"UNet {name} must be an integer >= {minimum}, got {value!r}")
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "width": width,
                       "depth": depth, "groups": groups}
        channels = [width * 2**level for level in range(depth + 1)]
        self.stem = ConvBlock(in_channels, channels[0], groups)
        self.down = nn.ModuleList(ConvBlock(channels[i], channels[i + 1], groups) for i in range(depth))
        self.up = nn.ModuleList(Up(channels[i + 1], channels[i], groups) for i in reversed(range(depth)))
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        multiple = 2 ** len(self.down)
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            # Reflect needs the pad to be smaller than the side; only tiny inputs fall back.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)[..., :h, :w]
