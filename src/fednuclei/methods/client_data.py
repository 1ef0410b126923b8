"""A hospital's tiles, as every method's client reads them.

A ``pixel`` client holds the training patches of its label view that carry pixel masks (the
others are left out) and the masked validation tiles of its partition. A ``bbox``, ``points`` or
``none`` client holds every training patch, with the boxes, points or nothing it has, and no
validation tiles: that path never reads ``Tile.instances``, since a weak client's folders hold no
masks and its training must not depend on them. What a method does with a weak client is its own
choice (FedAvg: nothing; FedMix, FedST, FedRGD: pseudo-labels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fednuclei.data.tiles import Tile, load_tiles
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

# Tile sets read by this process, by folder: simulated clients are Ray actors that live across
# rounds, so each round would otherwise decode the same PNGs again.
_TILE_CACHE: dict[Path, tuple[int, list[Tile]]] = {}


@dataclass(frozen=True)
class ClientData:
    """One client's tiles.

    Attributes:
        name: the client (hospital) name.
        train: the training patches: those with pixel masks for a ``pixel`` client; every patch
            for a weak or unlabelled one.
        val: whole ``split == "val"`` tiles with pixel masks; empty for a weak client.
        supervision: the client's level from the settings (``pixel`` when the run names no
            levels).
    """

    name: str
    train: list[Tile]
    val: list[Tile]
    supervision: str = "pixel"

    @property
    def weak(self) -> bool:
        """Whether the client trains without pixel masks (``bbox``, ``points`` or ``none``)."""
        return self.supervision != "pixel"


def load_client_data(name: str, base: Path, settings: RunSettings) -> ClientData:
    """The tiles of client ``name``: its patches under ``<base>/<root>/<name>`` for every training
    root and its validation tiles under ``<base>/<val_root>/<name>`` (see the module docstring).

    Raises:
        FileNotFoundError: naming a missing tile-set folder.
        ValueError: a run that does not name client ``name``.
    """
    supervision = settings.supervision_of(name)
    train = [tile for root in settings.train_roots for tile in cached_tiles(base / root / name)]
    if supervision != "pixel":
        return ClientData(name=name, train=train, val=[], supervision=supervision)
    labelled = [tile for tile in train if tile.instances is not None]
    if len(labelled) < len(train):
        logger.info("client %s: %d of %d training patches carry no pixel mask and are left out",
                    name, len(train) - len(labelled), len(train))
    val = [t for t in cached_tiles(base / settings.val_root / name) if t.split == "val" and t.instances is not None]
    return ClientData(name=name, train=labelled, val=val, supervision=supervision)


def cached_tiles(folder: Path) -> list[Tile]:
    """:func:`~fednuclei.data.tiles.load_tiles`, read again only when the folder's index changes."""
    index = folder / "tiles.json"
    if not index.is_file():
        raise FileNotFoundError(f"no tile set at {folder} (missing {index.name})")
    stamp = index.stat().st_mtime_ns
    key = folder.resolve()
    hit = _TILE_CACHE.get(key)
    if hit is None or hit[0] != stamp:
        hit = _TILE_CACHE[key] = (stamp, load_tiles(folder))
    return hit[1]
