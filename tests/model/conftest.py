"""Fixtures of the model tests: tiny U-Nets and 64x64 synthetic tiles."""

from __future__ import annotations

import pytest
import torch

from fednuclei.data.synthetic import generate_synthetic_tiles
from fednuclei.model.unet import UNet


@pytest.fixture(scope="session")
def tiles64():
    """Four 64x64 synthetic tiles with exact instances."""
    return generate_synthetic_tiles(n_hospitals=1, tiles_per_hospital=4, size=64, seed=0, nuclei_per_tile=(4, 10))


@pytest.fixture
def tiny_unet():
    """A seeded UNet(width=8, depth=2) factory: the same seed gives the same initial weights."""

    def make(seed: int = 0) -> UNet:
        torch.manual_seed(seed)
        return UNet(width=8, depth=2)

    return make
