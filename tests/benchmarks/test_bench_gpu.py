"""The GPU benchmark runs on the library alone (no Kedro, Flower, MLflow, albumentations,
matplotlib or YAML, which the GPU machine lacks), here on the CPU with a tiny budget."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fednuclei.data.synthetic import generate_synthetic_tiles
from fednuclei.data.tiles import save_tile_sets

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ABSENT_ON_THE_GPU_MACHINE = ("kedro", "flwr", "mlflow", "ray", "albumentations", "matplotlib", "yaml")
BLOCKER = f'''
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT_ON_THE_GPU_MACHINE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU machine)")
sys.meta_path.insert(0, _Absent())
'''


def test_bench_gpu_runs_on_prepared_client_folders_with_the_library_only(tmp_path):
    clients = ["breast", "kidney", "liver", "prostate", "bladder_colon_stomach"]
    tiles = generate_synthetic_tiles(n_hospitals=5, tiles_per_hospital=3, size=128, seed=0, nuclei_per_tile=(8, 15))
    partitions = {client: [replace(t, client=client, split="train" if i < 2 else "val")
                           for i, t in enumerate(t for t in tiles if t.group == f"hospital_{k}")]
                  for k, client in enumerate(clients)}
    folder = tmp_path / "client_partitions"
    save_tile_sets(partitions, folder)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "gpu.json"
    settings = {"width": 4, "depth": 2, "groups": 2, "batch_size": 4, "infer_patch": 64, "flip_rotate": True}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--data", str(folder), "--budget", "1",
         "--steps", "2", "--patch", "64", "--settings", json.dumps(settings), "--out", str(out)],
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["device"].startswith("cpu") and results["clients"] == {c: 8 for c in clients}
    assert results["speed"]["loop_over_model"] > 0
    for method in ("fedavg", "centralized"):
        assert results[method]["rounds"] >= 1 and 0 <= results[method]["quality"]["val"]["dice"] <= 1
        assert results[method]["quality"]["val"]["n_tiles"] == 5
    assert results["scoring"]["synthetic"]["tiles"] == 15 and results["scoring"]["monuseg_val"]["tiles"] == 5
    assert set(results["scoring"]["synthetic"]["seconds_by_workers"]) >= {"1"}
