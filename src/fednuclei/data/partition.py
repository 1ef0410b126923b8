"""Clients from configuration, seeded splits, and what each client may see.

A client configuration is a mapping::

    name: breast            # unique
    source: monuseg         # tiles of this source only
    organs: [breast]        # optional selections; a tile must match every one given
    groups: [slide_01]      #   (patient / slide / site / synthetic hospital)
    tiles: [TCGA-...]       #   (explicit tile names)
    supervision: pixel      # pixel | bbox | points | none
    join_round: 0           # optional: the round a late joiner enters (incremental learning)
    split_by: tile          # optional: tile (default) or group, to keep a patient's tiles in one split
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from fednuclei.data.tiles import SUPERVISION_LEVELS, Tile

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# What a client holds in each view: its own labels (`supervised`), or pixel masks for all (`full`).
LABEL_VIEWS = ("supervised", "full")
EXTERNAL_TEST = "external_test"
_CLIENT_KEYS = {"name", "source", "organs", "groups", "tiles", "supervision", "join_round", "split_by"}
_SELECTIONS = {"organs": "organ", "groups": "group", "tiles": "tile"}


class ClientConfigError(ValueError):
    """A client configuration that cannot be applied to the ingested tiles."""


def validate_clients(clients: list[dict]) -> None:
    """Check client configurations before any tile is touched."""
    if not clients:
        raise ClientConfigError("parameter 'clients' is empty: configure at least one client")
    seen = set()
    for i, client in enumerate(clients):
        name = client.get("name")
        where = f"clients[{i}]" + (f" ({name})" if name else "")
        if not name:
            raise ClientConfigError(f"{where}: missing 'name'")
        if name in seen:
            raise ClientConfigError(f"{where}: duplicate client name '{name}'")
        seen.add(name)
        unknown = set(client) - _CLIENT_KEYS
        if unknown:
            raise ClientConfigError(f"{where}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(_CLIENT_KEYS)}")
        if "source" not in client:
            raise ClientConfigError(f"{where}: missing 'source'")
        supervision = client.get("supervision")
        if supervision not in SUPERVISION_LEVELS:
            raise ClientConfigError(
                f"{where}: unknown supervision level {supervision!r}; use one of {list(SUPERVISION_LEVELS)}"
            )
        if client.get("split_by", "tile") not in ("tile", "group"):
            raise ClientConfigError(f"{where}: split_by must be 'tile' or 'group', got {client['split_by']!r}")
        join_round = client.get("join_round", 0)
        if not isinstance(join_round, int) or join_round < 0:
            raise ClientConfigError(f"{where}: join_round must be a non-negative integer, got {join_round!r}")


def tiles_table(tiles: list[Tile]) -> pd.DataFrame:
    """One row per tile: the columns of the tile manifest known before clients are assigned."""
    return pd.DataFrame(
        {
            "tile": [t.name for t in tiles],
            "source": [t.source for t in tiles],
            "organ": [t.organ for t in tiles],
            "group": [t.group for t in tiles],
            "subset": [t.subset for t in tiles],
            "has_instances": [t.has_instances for t in tiles],
            "label_source": [t.label_source for t in tiles],
            "n_nuclei": [t.n_nuclei for t in tiles],
            "height": [t.height for t in tiles],
            "width": [t.width for t in tiles],
        }
    )


def _select(table: pd.DataFrame, client: dict) -> pd.Series:
    source_rows = table["source"] == client["source"]
    if not source_rows.any():
        present = sorted(table["source"].unique())
        raise ClientConfigError(f"client '{client['name']}': source {client['source']!r} has no tile (sources present: {present})")
    chosen = source_rows & (table["subset"] == "train")
    for key, column in _SELECTIONS.items():
        if key in client:
            wanted = [str(v) for v in np.atleast_1d(client[key])]
            missing = sorted(set(wanted) - set(table.loc[source_rows, column]))
            if missing:
                raise ClientConfigError(
                    f"client '{client['name']}': {key} {missing} match no {client['source']} tile "
                    f"(available: {sorted(table.loc[source_rows, column].unique())})"
                )
            chosen &= table[column].isin(wanted)
    if not chosen.any():
        raise ClientConfigError(f"client '{client['name']}': its selection matches no training tile")
    return chosen


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``n`` units; every split with a positive fraction gets one when n allows.

    Train always gets at least one unit; with fewer units than positive splits, val then test go empty.
    """
    total = sum(fractions[s] for s in SPLITS)
    exact = {s: n * fractions[s] / total for s in SPLITS}
    counts = {s: int(np.floor(v)) for s, v in exact.items()}
    for s in sorted(SPLITS, key=lambda s: counts[s] - exact[s])[: n - sum(counts.values())]:
        counts[s] += 1
    for s in ("val", "test"):
        if fractions[s] > 0 and counts[s] == 0 and counts["train"] > 1:
            counts[s], counts["train"] = 1, counts["train"] - 1
    if counts["train"] == 0 and n > 0:
        donor = max(("val", "test"), key=counts.get)
        counts[donor], counts["train"] = counts[donor] - 1, 1
    return counts


def _split_units(units: list[str], fractions: dict[str, float], seed: int, client: str) -> dict[str, str]:
    # Seeded by client name as well so adding a client does not reshuffle the others.
    rng = np.random.default_rng([seed, zlib.crc32(client.encode())])
    order = [units[i] for i in rng.permutation(len(units))]
    counts = split_counts(len(order), fractions)
    assignment, start = {}, 0
    for split in SPLITS:
        for unit in order[start : start + counts[split]]:
            assignment[unit] = split
        start += counts[split]
    return assignment


def tile_generations(known: Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """``known`` (tile name -> the generation it first appeared in) with the names it lacks added
    as one new generation (1 when nothing was known): new data arrives in generations."""
    new = [name for name in names if name not in known]
    generation = max(known.values(), default=0) + 1
    return {**known, **dict.fromkeys(new, generation)}


def build_manifest(tiles: list[Tile], clients: list[dict], fractions: dict[str, float], seed: int,
                   generations: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Assign tiles to clients and splits.

    Tiles that arrive later (a higher generation, see :func:`tile_generations`) are split apart
    from the earlier ones, which keep their splits: new data never moves a tile (or a patient,
    with ``split_by: group``) from one split to another.

    Args:
        tiles: ingested tiles.
        clients: client configurations (see module docstring).
        fractions: ``{"train": f, "val": f, "test": f}``, non-negative, train positive.
        seed: split seed; the same seed and tiles give the same split.
        generations: tile name -> generation (default: every tile in generation 1).

    Returns:
        The tile manifest: one row per tile with tile, source, organ, group, subset, client, split,
        supervision, join_round, generation, incremental (the tile trains only in an incremental
        stage: its client joins later, or it arrived after the first generation), has_instances,
        label_source, n_nuclei, height, width. Official test tiles get split ``external_test``;
        training tiles no client selects are left out (logged).
    """
    validate_clients(clients)
    if set(fractions) != set(SPLITS) or any(v < 0 for v in fractions.values()) or fractions["train"] <= 0:
        raise ClientConfigError(f"split fractions must give train > 0, val >= 0, test >= 0; got {fractions}")
    table = tiles_table(tiles)
    table["client"], table["split"], table["supervision"], table["join_round"] = "", "", "", 0
    table["generation"] = table["tile"].map(generations or {}).fillna(1).astype(int)
    owner = pd.Series("", index=table.index)
    for client in clients:
        chosen = _select(table, client)
        taken = chosen & (owner != "")
        if taken.any():
            clash = table.loc[taken, "tile"].tolist()
            raise ClientConfigError(
                f"client '{client['name']}' selects tiles already given to another client: {clash[:5]}"
                + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
            )
        owner[chosen] = client["name"]
        rows = table.loc[chosen]
        unit_column = "group" if client.get("split_by", "tile") == "group" else "tile"
        arrival = rows.groupby(unit_column)["generation"].min()  # a unit's split is set when it first arrives
        assignment = {}
        for generation, units in arrival.groupby(arrival):
            key = client["name"] if generation == 1 else f"{client['name']}#{generation}"
            assignment |= _split_units(sorted(units.index), fractions, seed, key)
        table.loc[chosen, "client"] = client["name"]
        table.loc[chosen, "split"] = rows[unit_column].map(assignment)
        table.loc[chosen, "supervision"] = client["supervision"]
        table.loc[chosen, "join_round"] = client.get("join_round", 0)
    external = table["subset"] == "test"
    table.loc[external, "split"] = EXTERNAL_TEST
    unused = table.loc[(owner == "") & ~external, "tile"].tolist()
    if unused:
        logger.info("%d training tiles belong to no client and are left out: %s", len(unused), unused[:10])
    manifest = table.loc[(owner != "") | external].reset_index(drop=True)
    manifest["incremental"] = (manifest["join_round"] > 1) | (manifest["generation"] > 1)
    columns = ["tile", "source", "organ", "group", "subset", "client", "split", "supervision", "join_round",
               "generation", "incremental", "has_instances", "label_source", "n_nuclei", "height", "width"]
    return manifest[columns]


def restrict_labels(tile: Tile, supervision: str) -> Tile:
    """The tile as a client of that supervision level holds it: a weak client never holds pixel masks."""
    if supervision == "pixel":
        return tile
    return replace(
        tile,
        instances=None,
        boxes=tile.boxes if supervision == "bbox" else None,
        points=tile.points if supervision == "points" else None,
    )


def _annotate(tile: Tile, row: pd.Series) -> Tile:
    return replace(tile, client=row["client"], split=row["split"], supervision=row["supervision"])


def client_partitions(tiles: list[Tile], manifest: pd.DataFrame, *, full_labels: bool = False,
                      incremental: bool | None = None) -> dict[str, list[Tile]]:
    """Each client's train and val tiles, every client of the manifest a key (its list may be empty).

    Args:
        full_labels: False: only the labels each client's supervision level allows (what the
            hospital really holds). True: every client keeps its pixel masks, the fully supervised
            reference that FedAvg, local and centralized training are measured against.
        incremental: False: only the tiles of the first stage; True: only those an incremental
            stage adds (the manifest's ``incremental`` column); None: all.
    """
    by_name = {t.name: t for t in tiles}
    partitions: dict[str, list[Tile]] = {client: [] for client in manifest["client"] if client}
    rows = manifest[manifest["split"].isin(["train", "val"])]
    if incremental is not None:
        rows = rows[rows["incremental"] == incremental]
    for _, row in rows.iterrows():
        tile = _annotate(by_name[row["tile"]], row)
        partitions.setdefault(row["client"], []).append(tile if full_labels else restrict_labels(tile, row["supervision"]))
    return partitions


def evaluation_tiles(tiles: list[Tile], manifest: pd.DataFrame) -> list[Tile]:
    """Held-out tiles with their full ground truth (val, test, external test), for scoring only."""
    by_name = {t.name: t for t in tiles}
    rows = manifest[manifest["split"].isin(["val", "test", EXTERNAL_TEST])]
    return [_annotate(by_name[row["tile"]], row) for _, row in rows.iterrows()]
