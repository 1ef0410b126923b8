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
from dataclasses import dataclass, field
from pathlib import Path

from fednuclei.data.tiles import Tile, load_tiles
from fednuclei.model.batches import TrainingPatches
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

# Tile sets and client data read by this process: simulated clients are Ray actors that live
# across rounds, so each round would otherwise decode the same PNGs and compute the same targets.
_TILE_CACHE: dict[Path, tuple[int, list[Tile]]] = {}
_CLIENT_CACHE: dict[tuple, ClientData] = {}


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
    _patches: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def weak(self) -> bool:
        """Whether the client trains without pixel masks (``bbox``, ``points`` or ``none``)."""
        return self.supervision != "pixel"

    def labelled_patches(self, contour_width: int) -> TrainingPatches:
        """The training patches with their targets, computed once per contour width.

        Raises:
            ValueError: a patch without instances (a weak client's), named.
        """
        if contour_width not in self._patches:
            self._patches[contour_width] = TrainingPatches.labelled(self.train, contour_width)
        return self._patches[contour_width]

    def image_patches(self) -> TrainingPatches:
        """The training patches' images only (no label is read), stacked once."""
        if None not in self._patches:
            self._patches[None] = TrainingPatches.of([tile.image for tile in self.train])
        return self._patches[None]


def load_client_data(name: str, base: Path, settings: RunSettings) -> ClientData:
    """The tiles of client ``name``: its patches under ``<base>/<root>/<name>`` for every training
    root and its validation tiles under ``<base>/<root>/<name>`` for every validation root (see the
    module docstring).

    Raises:
        FileNotFoundError: naming a missing tile-set folder.
        ValueError: a run that does not name client ``name``.
    """
    supervision = settings.supervision_of(name)
    folders = [base / root / name for root in (*settings.train_roots, *settings.val_roots)]
    key = (name, supervision, *((folder.resolve(), _stamp(folder)) for folder in folders))
    if key not in _CLIENT_CACHE:
        _CLIENT_CACHE[key] = _read_client_data(name, base, settings, supervision)
    return _CLIENT_CACHE[key]


def _read_client_data(name: str, base: Path, settings: RunSettings, supervision: str) -> ClientData:
    train = [tile for root in settings.train_roots for tile in cached_tiles(base / root / name)]
    if supervision != "pixel":
        return ClientData(name=name, train=train, val=[], supervision=supervision)
    labelled = [tile for tile in train if tile.instances is not None]
    if len(labelled) < len(train):
        logger.info("client %s: %d of %d training patches carry no pixel mask and are left out",
                    name, len(train) - len(labelled), len(train))
    val = [t for root in settings.val_roots for t in cached_tiles(base / root / name)
           if t.split == "val" and t.instances is not None]
    return ClientData(name=name, train=labelled, val=val, supervision=supervision)


def cached_tiles(folder: Path) -> list[Tile]:
    """:func:`~fednuclei.data.tiles.load_tiles`, read again only when the folder's index changes."""
    stamp = _stamp(folder)
    key = folder.resolve()
    hit = _TILE_CACHE.get(key)
    if hit is None or hit[0] != stamp:
        hit = _TILE_CACHE[key] = (stamp, load_tiles(folder))
    return hit[1]


def _stamp(folder: Path) -> int:
    """When the tile set of ``folder`` was last written.

    Raises:
        FileNotFoundError: ``folder`` holds no tile set.
    """
    index = folder / "tiles.json"
    if not index.is_file():
        raise FileNotFoundError(f"no tile set at {folder} (missing {index.name})")
    return index.stat().st_mtime_ns
