"""The tile: one H&E image with whatever labels its owner may use, and its folder format.

A tile set on disk is a folder::

    tiles.json              one record per tile: metadata and weak labels
    images/<name>.png       RGB uint8
    instances/<name>.png    uint16 instance labels (0 = background), only for tiles that carry them

so a client folder whose supervision is not ``pixel`` visibly holds no ``instances/`` files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fednuclei.atomic import atomic_folder
from fednuclei.data.images import load_image
from fednuclei.data.weak_labels import boxes_from_instances, points_from_instances

SUPERVISION_LEVELS = ("pixel", "bbox", "points", "none")

# Where a tile's instances come from, and how exact they are:
# polygons (annotation XML), instance_map (one integer per nucleus) and synthetic are exact;
# separated_mask is a binary mask that draws touching nuclei apart, so its connected components
# are near-exact instances (TNBC); mask is a binary mask whose touching nuclei merge.
LABEL_SOURCES = ("polygons", "instance_map", "synthetic", "separated_mask", "mask")

_META_FIELDS = ("name", "source", "organ", "group", "subset", "has_instances", "label_source", "client", "split",
                "supervision")


@dataclass
class Tile:
    """One image tile and its labels.

    Attributes:
        name: unique tile id (the file stem for real data).
        image: (H, W, 3) uint8 RGB.
        source: where it came from: ``monuseg``, ``tnbc``, ``folder`` or ``synthetic``.
        organ: tissue of origin (``unknown`` when the source does not say).
        group: patient, slide or site the tile belongs to; splits can keep a group together.
        subset: the publisher's split, ``train`` or ``test`` (official test tiles are an external test set).
        instances: (H, W) int32 instance labels, 0 = background, or None when withheld.
        has_instances: True when instances are exact or near-exact (``label_source`` other than
            ``mask``); False when they are connected components of a binary mask, where touching
            nuclei merge, so object metrics on them would be wrong.
        label_source: where the instances come from, one of :data:`LABEL_SOURCES` ("" unknown).
        boxes: (N, 4) float32 ``x0, y0, x1, y1`` per nucleus, pixel edges (x1, y1 exclusive), or None.
        points: (N, 2) float32 ``x, y`` per nucleus, a pixel inside it, or None.
        client, split, supervision: set when the tile is assigned to a client.
    """

    name: str
    image: np.ndarray
    source: str
    organ: str = "unknown"
    group: str = ""
    subset: str = "train"
    instances: np.ndarray | None = None
    has_instances: bool = False
    label_source: str = ""
    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    client: str = ""
    split: str = ""
    supervision: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def n_nuclei(self) -> int:
        """Nuclei count from whichever label the tile carries (instances, boxes, then points)."""
        if self.instances is not None:
            return int(len(np.unique(self.instances[self.instances > 0])))
        for labels in (self.boxes, self.points):
            if labels is not None:
                return int(len(labels))
        return 0


def annotated_tile(name: str, image: np.ndarray, instances: np.ndarray, **fields) -> Tile:
    """A tile with its (H, W) instance map and the weak labels derived from it: one box and one
    point per nucleus. ``fields`` are the other :class:`Tile` attributes."""
    return Tile(
        name=name, image=image, instances=instances,
        boxes=boxes_from_instances(instances), points=points_from_instances(instances), **fields,
    )


def _record(tile: Tile) -> dict:
    record = {name: getattr(tile, name) for name in _META_FIELDS}
    record["height"], record["width"] = tile.height, tile.width
    record["stored_instances"] = tile.instances is not None
    record["boxes"] = None if tile.boxes is None else np.asarray(tile.boxes).round(2).tolist()
    record["points"] = None if tile.points is None else np.asarray(tile.points).round(2).tolist()
    record["extra"] = tile.extra
    return record


def _write_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def _write_tiles(tiles: list[Tile], folder: Path) -> None:
    names = [tile.name for tile in tiles]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"cannot save tile set {folder}: duplicate tile names {dupes}")
    (folder / "images").mkdir(parents=True)
    (folder / "instances").mkdir()
    for tile in tiles:
        _write_png(np.ascontiguousarray(tile.image, dtype=np.uint8), folder / "images" / f"{tile.name}.png")
        if tile.instances is not None:
            if tile.instances.max(initial=0) > np.iinfo(np.uint16).max:
                raise ValueError(f"tile {tile.name}: more than 65535 instances cannot be stored as uint16")
            _write_png(tile.instances.astype(np.uint16), folder / "instances" / f"{tile.name}.png")
    (folder / "tiles.json").write_text(json.dumps([_record(t) for t in tiles], indent=1))


def save_tiles(tiles: list[Tile], folder: str | os.PathLike) -> None:
    """Write ``tiles`` to ``folder`` atomically: a failed write leaves the previous folder intact."""
    with atomic_folder(Path(folder)) as staging:
        _write_tiles(tiles, staging)


def save_tile_sets(tile_sets: dict[str, list[Tile]], folder: str | os.PathLike) -> None:
    """Write one tile set per key (e.g. per client) as subfolders of ``folder``, atomically as a whole."""
    with atomic_folder(Path(folder)) as staging:
        for key, tiles in tile_sets.items():
            _write_tiles(tiles, staging / key)


class TileSetFolders(Mapping[str, list[Tile]]):
    """Tile sets written by :func:`save_tile_sets`, keyed by subfolder, each read on first access.

    Training reads a client's folder by path (``folder(key)``) without decoding the images here.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root} not found: no tile sets there")
        self._keys = [sub.name for sub in sorted(self.root.iterdir()) if (sub / "tiles.json").is_file()]
        self._loaded: dict[str, list[Tile]] = {}

    def folder(self, key: str) -> Path:
        if key not in self._keys:
            raise KeyError(f"no tile set {key!r} under {self.root} (there are {self._keys})")
        return self.root / key

    def __getitem__(self, key: str) -> list[Tile]:
        if key not in self._loaded:
            self._loaded[key] = load_tiles(self.folder(key))
        return self._loaded[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def load_tile_sets(folder: str | os.PathLike) -> TileSetFolders:
    """Tile sets written by :func:`save_tile_sets`, read lazily (see :class:`TileSetFolders`)."""
    return TileSetFolders(folder)


def load_tiles(folder: str | os.PathLike) -> list[Tile]:
    """Read a tile set written by :func:`save_tiles`.

    Raises:
        FileNotFoundError: no ``tiles.json``, or a file it lists is missing.
        ImageReadError: a truncated or corrupt image, named.
    """
    folder = Path(folder)
    index = folder / "tiles.json"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: {folder} is not a tile set folder")
    tiles = []
    for record in json.loads(index.read_text()):
        name = record["name"]
        image = np.asarray(load_image(folder / "images" / f"{name}.png")[0].convert("RGB"))
        instances = None
        if record["stored_instances"]:
            instances = np.asarray(load_image(folder / "instances" / f"{name}.png")[0]).astype(np.int32)
        boxes = None if record["boxes"] is None else np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        points = None if record["points"] is None else np.asarray(record["points"], np.float32).reshape(-1, 2)
        meta = {k: record[k] for k in _META_FIELDS}
        tiles.append(Tile(image=image, instances=instances, boxes=boxes, points=points, extra=record["extra"], **meta))
    return tiles
