import numpy as np
import pytest
import torch

from fednuclei.data.patches import extract_patches
from fednuclei.methods.baselines import train_centralized, train_local
from fednuclei.methods.common import validation_dice
from fednuclei.run_settings import RunSettings

SETTINGS = RunSettings(num_server_rounds=3, local_epochs=1, batch_size=4, lr=0.01, width=4, depth=2, groups=2,
                       infer_patch=32)


@pytest.fixture(scope="module")
def client_data(synthetic_tiles):
    by_client = {}
    for tile in synthetic_tiles:
        by_client.setdefault(tile.group, []).append(tile)
    train = {client: extract_patches(tiles[:3], 32, 32) for client, tiles in by_client.items()}
    val = {client: tiles[3:] for client, tiles in by_client.items()}
    return train, val


def test_centralized_keeps_the_round_with_the_best_validation_dice(client_data):
    train, val = client_data
    model, history = train_centralized(train, val, SETTINGS, torch.device("cpu"))
    assert [row["round"] for row in history] == [1, 2, 3]
    pooled_val = [t for tiles in val.values() for t in tiles]
    best = max(row["val_dice"] for row in history)
    assert np.mean(validation_dice(model, pooled_val, SETTINGS, torch.device("cpu"))) == pytest.approx(best, abs=1e-6)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_local_trains_one_model_per_client_with_patches(client_data):
    train, val = client_data
    train = {**train, "hospital_2": []}
    models, history = train_local(train, val, SETTINGS, torch.device("cpu"))
    assert sorted(models) == ["hospital_0", "hospital_1"]
    assert sorted({row["run"] for row in history}) == ["hospital_0", "hospital_1"] and len(history) == 6
    first, second = (next(models[c].parameters()).detach() for c in ("hospital_0", "hospital_1"))
    assert not torch.equal(first, second)
