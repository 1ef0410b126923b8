"""Training speed and quality of the library alone, on a GPU when there is one.

    python benchmarks/bench_gpu.py --data ../shared/data --budget 300 --out benchmarks/results/gpu.json

Runs the library layer only (torch, numpy, scipy, scikit-image, Pillow, pandas, tqdm; no Kedro,
Flower or MLflow), on the five MoNuSeg organ clients (raw layout or prepared client folders, see
``monuseg_clients.py``). In one run it measures:

1. the model's pure step rate (random tensors already on the device, same loss and optimiser) and
   the training loop's rate on the clients' patches (batches assembled and flipped on the
   device); their ratio says how much the data path costs;
2. FedAvg over the five clients, in process (each round every client trains ``local_epochs`` on
   its patches from the global weights; the weights are averaged by patch count), for
   ``--budget`` seconds, keeping the round with the best validation Dice;
3. centralized training on the pooled patches for the same budget;
4. both models' Dice, AJI and PQ on the validation tiles, the clients' test tiles and the
   official MoNuSeg test tiles when present, and the wall time of scoring the validation tiles
   (and 15 synthetic tiles) with the post-processing in one thread against one per CPU core.

Writes one JSON (``--out``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monuseg_clients import OrganClients, organ_clients  # noqa: E402

from fednuclei.data.synthetic import generate_synthetic_tiles  # noqa: E402
from fednuclei.data.tiles import Tile  # noqa: E402
from fednuclei.evaluation import score_tiles  # noqa: E402
from fednuclei.methods.aggregation import ClientReport, size_weights, weighted_average  # noqa: E402
from fednuclei.methods.client_data import ClientData  # noqa: E402
from fednuclei.methods.common import (  # noqa: E402
    LocalRound,
    build_model,
    contour_weighted_loss,
    local_seed,
    round_lr,
    validation_dice,
)
from fednuclei.methods.fedavg import fedavg_local_training  # noqa: E402
from fednuclei.model.batches import TrainingPatches  # noqa: E402
from fednuclei.model.device import pick_device  # noqa: E402
from fednuclei.model.postprocess import Postprocess  # noqa: E402
from fednuclei.model.training import fit, train_epochs  # noqa: E402
from fednuclei.run_settings import RunSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def step_rates(settings: RunSettings, patches: TrainingPatches, device: torch.device, steps: int) -> dict:
    """Patches per second of ``steps`` training steps on random tensors and on real batches,
    best of two alternating tries each (absolute rates vary with whatever else runs)."""
    model = build_model(settings).to(device)
    size = patches.images.shape[-1]
    images = torch.rand(settings.batch_size, 3, size, size, device=device)
    targets = (torch.rand(settings.batch_size, 2, size, size, device=device) > 0.5).float()
    loss = contour_weighted_loss(settings)
    real = patches.batches(settings.batch_size, 0, device, augment=settings.flip_rotate)

    def pure(epoch):
        return ((images, targets, None) for _ in range(steps))

    def loop(epoch):
        return itertools.islice(itertools.chain.from_iterable(real(e) for e in itertools.count(epoch * 1000)), steps)

    def rate(batches: Callable) -> float:
        fit(model, batches, epochs=1, lr=settings.lr, device=device, loss_fn=loss)  # warm-up
        _sync(device)
        start = time.perf_counter()
        result = fit(model, batches, epochs=1, lr=settings.lr, device=device, loss_fn=loss)
        _sync(device)
        return result.n_samples / (time.perf_counter() - start)

    pure_rate = max(rate(pure), rate(pure))
    loop_rate = max(rate(loop), rate(loop))
    return {"model_patches_per_second": round(pure_rate, 1), "loop_patches_per_second": round(loop_rate, 1),
            "loop_over_model": round(loop_rate / pure_rate, 3), "steps": steps, "batch_size": settings.batch_size}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_for(budget: float, one_round: Callable[[int, int], torch.nn.Module], validate: Callable) -> dict:
    """Rounds of ``one_round(round, planned rounds)`` until ``budget`` seconds are spent: the
    first round's time sets how many rounds fit (the cosine schedule needs the count); the model
    of the round with the best validation Dice is kept."""
    start, history, best = time.perf_counter(), [], (-math.inf, None)
    planned, server_round = 1, 0
    while server_round < planned:
        server_round += 1
        model = one_round(server_round, planned)
        dice = validate(model)
        history.append({"round": server_round, "val_dice": round(dice, 4),
                        "seconds": round(time.perf_counter() - start, 1)})
        if dice > best[0]:
            best = (dice, copy.deepcopy(model))
        if server_round == 1:
            planned = max(1, int(budget / (time.perf_counter() - start)))
    return {"model": best[1], "rounds": server_round, "seconds": round(time.perf_counter() - start, 1),
            "best_val_dice": round(best[0], 4), "history": history}


def fedavg(clients: OrganClients, settings: RunSettings, device: torch.device, budget: float) -> dict:
    data = {name: ClientData(name=name, train=patches, val=clients.val[name])
            for name, patches in clients.patches.items()}
    global_model = build_model(settings).to(device)

    def one_round(server_round: int, planned: int) -> torch.nn.Module:
        run = replace(settings, num_server_rounds=planned)
        reports, arrays = [], {}
        for name, client in data.items():
            local = copy.deepcopy(global_model)
            result = fedavg_local_training([local], client, run, device,
                                           LocalRound(local_seed(run, server_round, name), round_lr(run, server_round)))
            reports.append(ClientReport(name, "pixel", result.usable_images, result.loss))
            arrays[name] = [t.detach().cpu().numpy() for t in local.state_dict().values()]
        averaged = weighted_average(arrays, size_weights(reports))
        global_model.load_state_dict({k: torch.from_numpy(v) for k, v in zip(global_model.state_dict(), averaged)})
        return global_model

    return train_for(budget, one_round, lambda model: _val_dice(model, clients, settings, device))


def centralized(clients: OrganClients, settings: RunSettings, device: torch.device, budget: float) -> dict:
    pooled = TrainingPatches.labelled([p for patches in clients.patches.values() for p in patches],
                                      settings.contour_width)
    model = build_model(settings).to(device)
    state: dict = {"optimizer": None}

    def one_round(server_round: int, planned: int) -> torch.nn.Module:
        run = replace(settings, num_server_rounds=planned)
        result = train_epochs(model, pooled, epochs=run.local_epochs, batch_size=run.batch_size,
                              lr=round_lr(run, server_round), device=device, seed=local_seed(run, server_round, "all"),
                              augment=run.flip_rotate, loss_fn=contour_weighted_loss(run),
                              optimizer_state=state["optimizer"])
        state["optimizer"] = result.optimizer_state
        return model

    return train_for(budget, one_round, lambda m: _val_dice(m, clients, settings, device))


def _val_dice(model: torch.nn.Module, clients: OrganClients, settings: RunSettings, device: torch.device) -> float:
    return float(np.mean(validation_dice(model, clients.val_tiles, settings, device)))


def quality(model: torch.nn.Module, clients: OrganClients, settings: RunSettings, device: torch.device) -> dict:
    """Mean Dice, AJI and PQ per held-out set (AJI and PQ over tiles with exact instances)."""
    sets = {"val": clients.val_tiles, "test": [t for tiles in clients.test.values() for t in tiles],
            "external_test": clients.external_test}
    report = {}
    for name, tiles in sets.items():
        if tiles:
            per_image, _ = score_tiles(lambda tile: model, tiles, patch=settings.infer_patch,
                                       overlap=settings.infer_overlap, device=device, tta=settings.tta,
                                       postprocess=Postprocess.of(settings))
            means = per_image[["dice", "aji", "pq"]].mean()
            report[name] = {k: round(float(v), 4) for k, v in means.items()} | {"n_tiles": len(tiles)}
    return report


def parallel_scoring(model: torch.nn.Module, tiles: list[Tile], settings: RunSettings, device: torch.device) -> dict:
    """Wall time of scoring ``tiles``, post-processing in this thread or in one thread per CPU core."""
    seconds = {}
    for workers in (1, os.cpu_count() or 1):
        start = time.perf_counter()
        score_tiles(lambda tile: model, tiles, patch=settings.infer_patch, overlap=settings.infer_overlap,
                    device=device, tta=settings.tta, postprocess=Postprocess.of(settings), workers=workers)
        seconds[workers] = round(time.perf_counter() - start, 2)
    one, many = seconds.values()
    return {"tiles": len(tiles), "seconds_by_workers": seconds, "one_over_many": round(one / many, 2)}


def synthetic_tiles(count: int = 15) -> list[Tile]:
    """``count`` synthetic 256 px tiles, three hospitals (the scoring check of the synthetic default)."""
    tiles = generate_synthetic_tiles(n_hospitals=3, tiles_per_hospital=count // 3, size=256, seed=0)
    return [replace(tile, client=tile.group, split="val") for tile in tiles]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data",
                        help="folder with monuseg/train, or a prepared client_partitions folder")
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds for FedAvg and for centralized")
    parser.add_argument("--settings", type=json.loads, default={},
                        help='RunSettings values as JSON, e.g. \'{"width": 32, "batch_size": 16}\'')
    parser.add_argument("--steps", type=int, default=50, help="training steps per speed measurement")
    parser.add_argument("--patch", type=int, default=256, help="training patch side in pixels")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu.json")
    args = parser.parse_args(argv)
    settings = RunSettings.from_mapping({"width": 32, "batch_size": 16, **args.settings}, where="--settings")
    device = pick_device()
    torch.backends.cudnn.benchmark = True
    clients = organ_clients(args.data, args.patch)
    patches = TrainingPatches.labelled([p for ps in clients.patches.values() for p in ps], settings.contour_width)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {os.cpu_count()} cores",
        "torch": torch.__version__, "settings": settings.to_dict(), "budget_seconds": args.budget,
        "clients": {name: len(ps) for name, ps in clients.patches.items()},
        "speed": step_rates(settings, patches, device, args.steps),
    }
    for name, train in (("fedavg", fedavg), ("centralized", centralized)):
        run = train(clients, settings, device, args.budget)
        results[name] = {k: v for k, v in run.items() if k != "model"} | {
            "quality": quality(run["model"], clients, settings, device)}
        if name == "fedavg":
            results["scoring"] = {"monuseg_val": parallel_scoring(run["model"], clients.val_tiles, settings, device),
                                  "synthetic": parallel_scoring(run["model"], synthetic_tiles(), settings, device)}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
