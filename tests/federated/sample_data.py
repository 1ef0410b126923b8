"""Small synthetic clients in the Kedro data layout (two pixel clients; three of mixed
supervision), and run settings sized for CPU tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fednuclei.data.partition import restrict_labels
from fednuclei.data.synthetic import generate_synthetic_tiles
from fednuclei.data.tiles import save_tile_sets
from fednuclei.federated.settings import FederatedSettings

CLIENTS = ("alpha", "beta")
TRAIN_ROOT = "05_model_input/client_patches"
VAL_ROOT = "04_feature/client_partitions"


def write_client_data(base: Path) -> None:
    """Two pixel-labelled clients, three 64x64 tiles each: two training patches and one
    validation tile (the partition holds all three, split-tagged)."""
    tiles = generate_synthetic_tiles(n_hospitals=2, tiles_per_hospital=3, size=64, seed=0, nuclei_per_tile=(4, 10))
    partitions = {}
    for client, hospital in zip(CLIENTS, ("hospital_0", "hospital_1")):
        own = [t for t in tiles if t.group == hospital]
        partitions[client] = [replace(t, client=client, supervision="pixel", split="train" if i < 2 else "val")
                              for i, t in enumerate(own)]
    save_tile_sets({c: [t for t in ts if t.split == "train"] for c, ts in partitions.items()}, base / TRAIN_ROOT)
    save_tile_sets(partitions, base / VAL_ROOT)


def tiny_settings(base: Path, **changes) -> FederatedSettings:
    """A run small enough for CPU tests (width 8, depth 2, 64 px windows, 2 rounds) on the data
    under ``base``, checkpoints in ``base/checkpoints``."""
    settings = FederatedSettings(
        clients=CLIENTS, num_server_rounds=2, local_epochs=1, batch_size=2, lr=1e-3, seed=0, width=8, depth=2,
        groups=4, train_roots=(TRAIN_ROOT,), val_root=VAL_ROOT, data_path=str(base),
        checkpoint_dir=str(base / "checkpoints"), infer_patch=64, gpu_fraction=0.0,
    )
    return replace(settings, **changes)


# Three hospitals of mixed supervision, as the `supervised` data view holds them.
MIXED_CLIENTS = ("pixel_site", "box_site", "blind_site")
MIXED_SUPERVISION = ("pixel", "bbox", "none")


def write_mixed_client_data(base: Path) -> None:
    """Three clients, ``pixel``, ``bbox`` and ``none``, three 64x64 tiles each (two training
    patches, one validation tile), in the supervised layout: the weak clients' folders hold no
    masks (``restrict_labels``), the bbox client keeps its boxes."""
    tiles = generate_synthetic_tiles(n_hospitals=3, tiles_per_hospital=3, size=64, seed=0, nuclei_per_tile=(4, 10))
    partitions = {}
    for k, (client, supervision) in enumerate(zip(MIXED_CLIENTS, MIXED_SUPERVISION)):
        own = [t for t in tiles if t.group == f"hospital_{k}"]
        partitions[client] = [restrict_labels(replace(t, client=client, supervision=supervision,
                                                      split="train" if i < 2 else "val"), supervision)
                              for i, t in enumerate(own)]
    save_tile_sets({c: [t for t in ts if t.split == "train"] for c, ts in partitions.items()}, base / TRAIN_ROOT)
    save_tile_sets(partitions, base / VAL_ROOT)


def mixed_settings(base: Path, method: str = "fedmix", **changes) -> FederatedSettings:
    """A mixed-supervision run on :func:`write_mixed_client_data`'s clients: a tiny U-Net (width 4,
    depth 2), 2 rounds, checkpoints in ``base/checkpoints``."""
    settings = tiny_settings(base, clients=MIXED_CLIENTS, supervision=MIXED_SUPERVISION, method=method, width=4,
                             groups=2)
    return replace(settings, **changes)
