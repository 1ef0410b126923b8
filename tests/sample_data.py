"""Small synthetic clients in the Kedro data layout (two pixel clients; three of mixed
supervision), run settings sized for CPU tests, and bad inputs: a decompression bomb, the
leftovers of a write killed mid-way."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

from fednuclei.data.partition import restrict_labels
from fednuclei.data.patches import extract_patches
from fednuclei.data.synthetic import generate_synthetic_tiles
from fednuclei.data.tiles import Tile, save_tile_sets
from fednuclei.methods import settings_for
from fednuclei.run_settings import RunSettings

CLIENTS = ("alpha", "beta")
TRAIN_ROOT = "05_model_input/client_patches"
VAL_ROOT = "04_feature/client_partitions"


def write_client_data(base: Path, clients: tuple[str, ...] = CLIENTS) -> None:
    """Pixel-labelled clients (by default two), three 64x64 tiles each: two training patches and
    one validation tile (the partition holds all three, split-tagged)."""
    tiles = generate_synthetic_tiles(n_hospitals=len(clients), tiles_per_hospital=3, size=64, seed=0,
                                     nuclei_per_tile=(4, 10))
    partitions = {}
    for k, client in enumerate(clients):
        own = [t for t in tiles if t.group == f"hospital_{k}"]
        partitions[client] = [replace(t, client=client, supervision="pixel", split="train" if i < 2 else "val")
                              for i, t in enumerate(own)]
    save_tile_sets({c: [t for t in ts if t.split == "train"] for c, ts in partitions.items()}, base / TRAIN_ROOT)
    save_tile_sets(partitions, base / VAL_ROOT)


def tiny_settings(base: Path, **changes) -> RunSettings:
    """A run small enough for CPU tests (width 8, depth 2, 64 px windows, 2 rounds) on the data
    under ``base``, checkpoints in ``base/checkpoints``; ``changes`` may name another method
    (whose own defaults then apply)."""
    values = dict(
        clients=CLIENTS, num_server_rounds=2, local_epochs=1, batch_size=2, lr=1e-3, seed=0, width=8, depth=2,
        groups=4, train_roots=(TRAIN_ROOT,), val_roots=(VAL_ROOT,), data_path=str(base),
        checkpoint_dir=str(base / "checkpoints"), infer_patch=64, gpu_fraction=0.0,
    )
    return settings_for({**values, **changes})


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


def mixed_settings(base: Path, method: str = "fedmix", **changes) -> RunSettings:
    """A mixed-supervision run on :func:`write_mixed_client_data`'s clients: a tiny U-Net (width 4,
    depth 2), 2 rounds, checkpoints in ``base/checkpoints``."""
    return tiny_settings(base, **{"clients": MIXED_CLIENTS, "supervision": MIXED_SUPERVISION, "method": method,
                                  "width": 4, "groups": 2, **changes})


# Half the hospitals weak: two pixel-labelled ones with little data, two larger weakly labelled
# ones whose slides carry tissue-marking ink the pixel hospitals never show.
INKED_CLIENTS = ("pixel_a", "pixel_b", "box_site", "point_site")
INKED_SUPERVISION = ("pixel", "pixel", "bbox", "points")


def write_inked_mixed_client_data(base: Path, pixel_tiles: int = 2, weak_tiles: int = 5,
                                  val_tiles: int = 2) -> list[Tile]:
    """Four clients in the supervised layout, 256 px synthetic tiles cut into 128 px training
    patches: ``pixel_tiles`` training tiles at each pixel client, ``weak_tiles`` at each weak one,
    whose hospitals are inked; ``val_tiles`` validation tiles each.

    Returns:
        Every client's validation tiles with their full ground truth, to score a model on.
    """
    per_hospital = max(pixel_tiles, weak_tiles) + val_tiles
    tiles = generate_synthetic_tiles(n_hospitals=4, tiles_per_hospital=per_hospital, size=256, seed=0,
                                     inked_hospitals=[2, 3])
    partitions, patches, validation = {}, {}, []
    for k, (client, supervision) in enumerate(zip(INKED_CLIENTS, INKED_SUPERVISION)):
        own = [replace(t, client=client, supervision=supervision) for t in tiles if t.group == f"hospital_{k}"]
        train = [replace(t, split="train") for t in own[:pixel_tiles if supervision == "pixel" else weak_tiles]]
        val = [replace(t, split="val") for t in own[-val_tiles:]]
        validation += val
        partitions[client] = [restrict_labels(t, supervision) for t in train + val]
        patches[client] = [restrict_labels(p, supervision) for p in extract_patches(train, 128, 128)]
    save_tile_sets(patches, base / TRAIN_ROOT)
    save_tile_sets(partitions, base / VAL_ROOT)
    return validation


def decompression_bomb(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


_KILLED_WRITE = """
import sys, time
from pathlib import Path
from fednuclei.atomic import atomic_file, atomic_folder
target = Path(sys.argv[1])
with (atomic_folder if sys.argv[2] == "folder" else atomic_file)(target) as staging:
    if staging.is_dir():
        (staging / "half.png").write_bytes(b"x" * 1000)
    else:
        staging.write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(600)
"""


def killed_write(target: Path, kind: str = "folder") -> Path:
    """What a process SIGKILLed in the middle of an atomic write of ``target`` (``kind``: ``folder``
    or ``file``) leaves: returns its staging path, beside ``target``."""
    before = set(target.parent.iterdir()) if target.parent.is_dir() else set()
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITE, str(target), kind], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (staging,) = set(target.parent.iterdir()) - before - {target}
    return staging


_KILLED_RUN = """
import sys, time, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("fednuclei")
print(mlflow.start_run(tags={"project_path": sys.argv[2]}).info.run_id, flush=True)
time.sleep(600)
"""


def killed_mlflow_run(store: str, project: Path) -> str:
    """The id of the MLflow run a process SIGKILLed mid-run left in ``store``, tagged with
    ``project`` as kedro-mlflow tags its runs: RUNNING for ever."""
    process = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, store, str(project)], stdout=subprocess.PIPE,
                               text=True)
    run_id = process.stdout.readline().strip()
    process.send_signal(signal.SIGKILL)
    process.wait()
    return run_id
