"""Kedro dataset classes: the catalog's view of raw sources and tile sets.

Thin wrappers over the library readers and the tile-set folder format; the only module here,
with the pipelines, that knows Kedro exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

from fednuclei.atomic import atomic_file, atomic_folder
from fednuclei.data.folders import read_image_mask_folder
from fednuclei.data.monuseg import read_monuseg
from fednuclei.data.partition import tile_generations
from fednuclei.data.synthetic import generate_synthetic_tiles
from fednuclei.data.tiles import Tile, load_tile_sets, load_tiles, save_tile_sets, save_tiles
from fednuclei.data.tnbc import read_tnbc
from fednuclei.freshness.files import path_signature
from fednuclei.model.files import load_model, save_model
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

_READERS = {
    "monuseg": read_monuseg,
    "tnbc": read_tnbc,
    "folder": read_image_mask_folder,
    "synthetic": generate_synthetic_tiles,
}


class TileSourcesDataset(AbstractDataset[None, dict[str, list[Tile]]]):
    """Read-only: every configured raw source, read into tiles with instance masks.

    ``sources`` maps a source id to ``{format: monuseg|tnbc|folder|synthetic, path: ..., optional: bool,
    **reader arguments}``. An optional source whose folder is absent is skipped with a log line
    (the official MoNuSeg test tiles, say); any other problem raises, naming the source.
    """

    def __init__(self, *, sources: dict[str, dict[str, Any]], metadata: dict[str, Any] | None = None):
        if not sources:
            raise DatasetError("TileSourcesDataset needs at least one entry under 'sources'")
        for source_id, spec in sources.items():
            if spec.get("format") not in _READERS:
                raise DatasetError(
                    f"raw source '{source_id}': unknown format {spec.get('format')!r}; use one of {sorted(_READERS)}"
                )
            if spec["format"] != "synthetic" and "path" not in spec:
                raise DatasetError(f"raw source '{source_id}': missing 'path'")
        self._sources = sources
        self.metadata = metadata

    def load(self) -> dict[str, list[Tile]]:
        loaded = {}
        for source_id, spec in self._sources.items():
            arguments = {k: v for k, v in spec.items() if k not in ("format", "path", "optional")}
            reader = _READERS[spec["format"]]
            if spec["format"] == "synthetic":
                loaded[source_id] = reader(**arguments)
                continue
            path = Path(spec["path"])
            if not path.exists() and spec.get("optional", False):
                logger.info("Optional raw source '%s' not present at %s: skipped", source_id, path)
                continue
            if not path.exists():
                raise DatasetError(f"raw source '{source_id}': folder {path} does not exist (see README, 'Real data')")
            loaded[source_id] = reader(path, **arguments)
            logger.info("Read %d tiles from raw source '%s' (%s)", len(loaded[source_id]), source_id, path)
        return loaded

    def save(self, data: None) -> None:
        raise DatasetError("raw tile sources are read-only")

    def signature(self) -> dict[str, Any]:
        """What the sources hold, cheaply (:mod:`fednuclei.freshness`): their configuration, and
        the file listing (sizes, modification times) of every source folder; a synthetic source
        is its configuration alone."""
        folders = {source_id: path_signature(spec["path"]) or "absent"
                   for source_id, spec in self._sources.items() if "path" in spec}
        return {"sources": self._sources, "folders": folders}

    def _describe(self) -> dict[str, Any]:
        return {"sources": self._sources}


class TileSetDataset(AbstractDataset[list[Tile], list[Tile]]):
    """A folder of tiles (PNG images, uint16 instance PNGs, ``tiles.json``), written atomically."""

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> list[Tile]:
        return load_tiles(self._path)

    def save(self, data: list[Tile]) -> None:
        save_tiles(data, self._path)

    def _exists(self) -> bool:
        return (self._path / "tiles.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class ClientTileSetsDataset(AbstractDataset[dict[str, list[Tile]], dict[str, list[Tile]]]):
    """One tile-set folder per client under ``path``: the folder a hospital's node reads."""

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, list[Tile]]:
        return load_tile_sets(self._path)

    def save(self, data: dict[str, list[Tile]]) -> None:
        save_tile_sets(data, self._path)

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class TileRegistryDataset(AbstractDataset[list[str], dict[str, int]]):
    """When each tile first appeared: a JSON ``{tile name: generation}`` that only grows.

    Saving a list of tile names adds those it does not know as one new generation
    (:func:`~fednuclei.data.partition.tile_generations`), so tiles added to a raw source after a
    run are told apart from those the run saw. Delete the file to count everything as new data
    of one first generation.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, int]:
        return json.loads(self._filepath.read_text()) if self._filepath.is_file() else {}

    def save(self, data: list[str]) -> None:
        registry = tile_generations(self.load(), data)
        with atomic_file(self._filepath) as staging:
            staging.write_text(json.dumps(registry, indent=0))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class RunSettingsDataset(AbstractDataset[RunSettings, RunSettings]):
    """A method's :class:`~fednuclei.run_settings.RunSettings` as a small JSON file, written
    atomically; also a settings file for ``flwr run`` (see :mod:`fednuclei.federated.run_config`)."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> RunSettings:
        return RunSettings.from_mapping(json.loads(self._filepath.read_text()), where=str(self._filepath))

    def save(self, data: RunSettings) -> None:
        with atomic_file(self._filepath) as staging:
            staging.write_text(json.dumps(data.to_dict(), indent=1))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ModelDataset(AbstractDataset[UNet, UNet]):
    """One trained U-Net as a ``.pt`` file (:func:`fednuclei.model.files.save_model` format)."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> UNet:
        return load_model(self._filepath)[0]

    def save(self, data: UNet) -> None:
        save_model(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ModelSetDataset(AbstractDataset[dict[str, UNet], dict[str, UNet]]):
    """Several U-Nets (one per client, say) as ``<path>/<name>.pt``, replaced as a whole."""

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, UNet]:
        if not self._path.is_dir():
            raise DatasetError(f"no models at {self._path}")
        return {file.stem: load_model(file)[0] for file in sorted(self._path.glob("*.pt"))}

    def save(self, data: dict[str, UNet]) -> None:
        with atomic_folder(self._path) as staging:
            for name, model in data.items():
                save_model(model, staging / f"{name}.pt")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class AtomicPartitionedDataset(PartitionedDataset):
    """Kedro's ``PartitionedDataset`` on the local disk, one file per key, replaced as a whole: a
    save writes every partition into a staging folder beside ``path`` and swaps it in
    (:func:`~fednuclei.atomic.atomic_folder`), so a failed or killed save leaves the previous
    partitions, and partitions absent from the new data do not survive it. Loading is
    ``PartitionedDataset``'s (one loader per key)."""

    def __init__(self, *, path: str, dataset: str | dict, filename_suffix: str = "",
                 metadata: dict[str, Any] | None = None):
        super().__init__(path=path, dataset=dataset, filename_suffix=filename_suffix, metadata=metadata)
        if self._protocol not in ("file", "local"):
            raise DatasetError(f"AtomicPartitionedDataset writes to the local disk only, not {path}")

    def save(self, data: dict[str, Any]) -> None:
        with atomic_folder(self._path) as staging:
            PartitionedDataset(**{**self._init_args, "path": str(staging)}).save(data)
        self._invalidate_caches()
