"""Nodes of the augmentation pipeline: thin calls into ``fednuclei.augment``."""

from __future__ import annotations

import logging

from PIL import Image

from fednuclei.augment import AugmentationRecipe, augment_tiles
from fednuclei.data.tiles import Tile
from fednuclei.drawing import contact_sheet

logger = logging.getLogger(__name__)


def augment_training_tiles(partitions: dict[str, list[Tile]], augmentation: dict) -> dict[str, list[Tile]]:
    """``augmentation.copies`` augmented copies of each client's training tiles (never val or test)."""
    recipe = AugmentationRecipe.from_dict(augmentation.get("recipe", {}))
    augmented = {}
    for client, tiles in partitions.items():
        training = [t for t in tiles if t.split == "train"]
        augmented[client] = augment_tiles(training, augmentation["copies"], augmentation["seed"], recipe)
        logger.debug("Client %s: %d augmented copies of %d training tiles", client, len(augmented[client]), len(training))
    return augmented


def draw_contact_sheet(partitions: dict[str, list[Tile]], augmented: dict[str, list[Tile]]) -> Image.Image:
    """The first training tile of every client beside its augmented copies."""
    originals = [next(t for t in tiles if t.split == "train") for tiles in partitions.values()
                 if any(t.split == "train" for t in tiles)]
    copies = [t for tiles in augmented.values() for t in tiles]
    return Image.fromarray(contact_sheet(originals, copies))
