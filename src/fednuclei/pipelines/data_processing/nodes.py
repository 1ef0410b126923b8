"""Nodes of the data_processing pipeline: thin calls into ``fednuclei.data``."""

from __future__ import annotations

import logging

import pandas as pd

from fednuclei.data.partition import LABEL_VIEWS, build_manifest, client_partitions, evaluation_tiles
from fednuclei.data.patches import extract_patches
from fednuclei.data.tiles import Tile

logger = logging.getLogger(__name__)


def ingest_tiles(raw_tiles: dict[str, list[Tile]], clients: list[dict], patches: dict) -> list[Tile]:
    """Merge the raw sources into one tile list, a tile name only once, after checking that the
    configuration fits the tiles (:func:`check_clients_fit`): this node writes first, so a
    configuration that does not fit stops the run before anything is replaced."""
    owners: dict[str, str] = {}
    clashes = []
    for source_id, tiles in raw_tiles.items():
        for tile in tiles:
            if tile.name in owners:
                clashes.append(f"{tile.name} ({owners[tile.name]} and {source_id})")
            owners[tile.name] = source_id
    if clashes:
        raise ValueError(f"duplicate tile names across raw sources: {', '.join(clashes[:10])}")
    tiles = [tile for source_tiles in raw_tiles.values() for tile in source_tiles]
    check_clients_fit(tiles, clients, patches["size"])
    exact = sum(tile.has_instances for tile in tiles)
    logger.info("Ingested %d tiles (%d with exact instances) from %s", len(tiles), exact, list(raw_tiles))
    return tiles


def check_clients_fit(tiles: list[Tile], clients: list[dict], patch_size: int) -> None:
    """Refuse, naming the client, a selection that matches no training tile or tiles of another
    client (:class:`~fednuclei.data.partition.ClientConfigError`), and a tile smaller than a
    training patch: any tile of a client may fall in its train split."""
    selected = build_manifest(tiles, clients, {"train": 1.0, "val": 0.0, "test": 0.0}, seed=0)
    selected = selected[selected["client"] != ""]
    small = selected[(selected["height"] < patch_size) | (selected["width"] < patch_size)]
    if len(small):
        named = ", ".join(f"{row.tile} of client '{row.client}' ({row.height}x{row.width})"
                          for row in small.head(5).itertuples())
        raise ValueError(f"parameter patches.size ({patch_size}) is larger than {len(small)} tile(s): {named}; every "
                         "tile of a client must hold one training patch")


def tile_names(tiles: list[Tile]) -> list[str]:
    """The names of the ingested tiles, for the registry of when each first appeared."""
    return [tile.name for tile in tiles]


def assign_clients(tiles: list[Tile], tile_registry: dict[str, int], clients: list[dict], splits: dict) -> pd.DataFrame:
    """The tile manifest: client, split, supervision and generation of every tile."""
    fractions = {name: splits[name] for name in ("train", "val", "test")}
    manifest = build_manifest(tiles, clients, fractions, seed=splits["seed"], generations=tile_registry)
    summary = manifest.groupby(["client", "split"]).size().unstack(fill_value=0)
    logger.info("Tiles per client and split:\n%s", summary.to_string())
    new = manifest[manifest["incremental"]].groupby("client").size()
    if len(new):
        logger.info("Tiles an incremental stage adds (clients that join later, tiles that arrived since the first "
                    "run):\n%s", new.to_string())
    return manifest


def partition_clients(tiles: list[Tile], tile_manifest: pd.DataFrame,
                      labels: str) -> tuple[dict[str, list[Tile]], dict[str, list[Tile]]]:
    """Each client's train/val tiles of the first stage, and those an incremental stage adds;
    ``labels`` is ``supervised`` (as configured) or ``full`` (all masks)."""
    if labels not in LABEL_VIEWS:
        raise ValueError(f"labels must be one of {LABEL_VIEWS}, got {labels!r}")
    return tuple(client_partitions(tiles, tile_manifest, full_labels=labels == "full", incremental=incremental)
                 for incremental in (False, True))


def select_evaluation_tiles(tiles: list[Tile], tile_manifest: pd.DataFrame) -> list[Tile]:
    """Held-out tiles (val, test, external test) with their full ground truth, for scoring only."""
    return evaluation_tiles(tiles, tile_manifest)


def cut_training_patches(partitions: dict[str, list[Tile]], patches: dict) -> dict[str, list[Tile]]:
    """Training patches of every client (train split only)."""
    return {
        client: extract_patches([t for t in tiles if t.split == "train"], patches["size"], patches["stride"])
        for client, tiles in partitions.items()
    }
