"""Which hospital a ClientApp plays, and that hospital's tiles.

Which patches a client trains on depends on the method and, for the mixed-supervision methods,
on the client's supervision level (``FederatedSettings.supervision``):

* FedAvg: the patches that carry pixel masks, whoever holds them (the others are left out);
* FedMix, FedST, FedRGD: a ``pixel`` client likewise trains on its masked patches; a ``bbox``,
  ``points`` or ``none`` client trains on all its patches, which carry boxes, points or nothing.
  That path never reads ``Tile.instances``: a weak client's folders hold no masks, and its
  training must not depend on them (its validation set is empty for the same reason).

The same ClientApp runs in simulation and deployment; only the node config differs:

* simulation: Flower gives each virtual SuperNode a ``partition-id``; it indexes the run's
  client list, and the data roots resolve against the run's ``data-path``;
* deployment: the hospital starts its SuperNode with
  ``--node-config "client='breast' data-path='/srv/fednuclei'"``: its own name and the project
  folder holding its data, which never leaves the site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fednuclei.data.tiles import Tile, load_tiles
from fednuclei.federated.settings import FederatedSettings

logger = logging.getLogger(__name__)

# Tile sets read by this process, by folder: simulated clients are Ray actors that live across
# rounds, so each round would otherwise decode the same PNGs again.
_TILE_CACHE: dict[Path, tuple[int, list[Tile]]] = {}


@dataclass(frozen=True)
class ClientData:
    """One client's tiles.

    Attributes:
        name: the client (hospital) name.
        train: the training patches: those with pixel masks for FedAvg and for a ``pixel``
            client (unmasked ones are left out); every patch for a weak or unlabelled client of
            FedMix, FedST or FedRGD.
        val: whole ``split == "val"`` tiles with pixel masks; empty for a client without masks
            (and for every weak client of the mixed-supervision methods).
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


def client_identity(node_config: Mapping[str, object], settings: FederatedSettings) -> tuple[str, Path]:
    """The client name and data base folder of this node.

    Raises:
        ValueError: the node config has neither ``client`` nor a usable ``partition-id``.
    """
    if "client" in node_config:
        name = str(node_config["client"])
    elif "partition-id" in node_config:
        index = int(node_config["partition-id"])
        if not 0 <= index < len(settings.clients):
            raise ValueError(f"partition-id {index} has no client: the run names {len(settings.clients)} clients "
                             f"{list(settings.clients)}")
        name = settings.clients[index]
    else:
        raise ValueError("node config must give client='<name>' (deployment) or partition-id (simulation); "
                         f"got {dict(node_config)}")
    return name, Path(str(node_config.get("data-path", settings.data_path))).expanduser()


def load_client_data(name: str, base: Path, settings: FederatedSettings) -> ClientData:
    """The tiles of client ``name``: ``<base>/<root>/<name>`` for every training root, and the
    validation tiles of ``<base>/<val_root>/<name>`` (see the module docstring for which ones).

    Raises:
        FileNotFoundError: naming a missing tile-set folder.
        ValueError: a mixed-supervision run that does not name client ``name``.
    """
    train = [tile for root in settings.train_roots for tile in cached_tiles(base / root / name)]
    if settings.method == "fedavg":
        return _masked_only(name, train, base, settings, settings.client_supervision.get(name, "pixel"))
    supervision = settings.supervision_of(name)
    if supervision == "pixel":
        return _masked_only(name, train, base, settings, supervision)
    # Weak or unlabelled: every patch, and no look at instances (nor validation tiles to use them).
    return ClientData(name=name, train=list(train), val=[], supervision=supervision)


def _masked_only(name: str, train: list[Tile], base: Path, settings: FederatedSettings,
                 supervision: str) -> ClientData:
    """The client's patches and validation tiles that carry pixel masks."""
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
