"""The five MoNuSeg organ clients of the `real` configuration, for benchmarks that run the library
alone (no Kedro): one client per organ group, seeded train/val/test splits, 256 px patches.

Reads either the raw MoNuSeg layout (``<data>/monuseg/train`` with ``images/`` and
``annotations/``, ``instances/`` or ``masks/``) or the project's prepared client folders
(``data/04_feature/full/client_partitions``, written by ``kedro run --env real --pipeline
data_processing``). Needs only the library's own dependencies (numpy, scipy, scikit-image,
Pillow, pandas, torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fednuclei.data.monuseg import read_monuseg
from fednuclei.data.partition import build_manifest, client_partitions, evaluation_tiles
from fednuclei.data.patches import extract_patches
from fednuclei.data.tiles import Tile, load_tile_sets

# As conf/real/parameters_data_processing.yml, every client with its pixel masks (the `full` view).
ORGAN_CLIENTS = [
    {"name": "breast", "source": "monuseg", "organs": ["breast"], "supervision": "pixel"},
    {"name": "kidney", "source": "monuseg", "organs": ["kidney"], "supervision": "pixel"},
    {"name": "liver", "source": "monuseg", "organs": ["liver"], "supervision": "pixel"},
    {"name": "prostate", "source": "monuseg", "organs": ["prostate"], "supervision": "pixel"},
    {"name": "bladder_colon_stomach", "source": "monuseg", "organs": ["bladder", "colon", "stomach"],
     "supervision": "pixel"},
]
SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}
SPLIT_SEED = 0
PATCH = 256


@dataclass
class OrganClients:
    """Whole training tiles, their patches, and whole validation / test tiles, by client."""

    train_tiles: dict[str, list[Tile]]
    patches: dict[str, list[Tile]]
    val: dict[str, list[Tile]]
    test: dict[str, list[Tile]]
    external_test: list[Tile]

    @property
    def val_tiles(self) -> list[Tile]:
        return [tile for tiles in self.val.values() for tile in tiles]


def organ_clients(data: Path, patch: int = PATCH) -> OrganClients:
    """The clients from ``data``: a folder holding ``monuseg/train`` (and optionally
    ``monuseg/test``, the official test tiles), or a prepared ``client_partitions`` folder;
    training tiles are cut into ``patch`` px patches.

    Raises:
        FileNotFoundError: neither layout under ``data``.
    """
    if (data / "monuseg" / "train" / "images").is_dir():
        tiles = read_monuseg(data / "monuseg" / "train")
        test_folder = data / "monuseg" / "test"
        external = read_monuseg(test_folder, subset="test") if (test_folder / "images").is_dir() else []
        manifest = build_manifest(tiles + external, ORGAN_CLIENTS, SPLITS, seed=SPLIT_SEED)
        partitions = client_partitions(tiles, manifest, full_labels=True)
        held_out = evaluation_tiles(tiles + external, manifest)
    elif data.is_dir() and any((sub / "tiles.json").is_file() for sub in data.iterdir()):
        partitions = {client: list(tiles) for client, tiles in load_tile_sets(data).items() if client != "tnbc"}
        held_out = [t for tiles in partitions.values() for t in tiles if t.split == "val"]
    else:
        raise FileNotFoundError(f"{data} holds neither monuseg/train/images nor prepared client_partitions")
    train = {c: [t for t in tiles if t.split == "train"] for c, tiles in partitions.items()}
    return OrganClients(
        train_tiles=train,
        patches={c: extract_patches(tiles, patch, patch) for c, tiles in train.items()},
        val={c: [t for t in held_out if t.client == c and t.split == "val"] for c in partitions},
        test={c: [t for t in held_out if t.client == c and t.split == "test"] for c in partitions},
        external_test=[t for t in held_out if t.split == "external_test"],
    )
