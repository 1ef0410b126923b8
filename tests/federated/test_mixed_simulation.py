"""FedMix and FedST on Flower's simulation runtime: three hospitals (pixel, bbox, none) whose
weak folders hold no masks, two rounds each, a tiny U-Net.

Two simulations in all (Ray start-up dominates).
"""

import json
import math

import pytest
import torch

from fednuclei.federated.simulation import run_federated
from fednuclei.model.files import load_model
from tests.sample_data import MIXED_CLIENTS, MIXED_SUPERVISION, mixed_settings, write_mixed_client_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    write_mixed_client_data(root)
    return root


@pytest.fixture(autouse=True)
def flower_home(data_root, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(data_root / "flwr_home"))  # keep ~/.flwr untouched


def test_fedmix_simulation_checkpoints_both_models_and_per_client_weights(data_root):
    # tau = 0: the two untrained models "agree", so the unlabelled client trains from round 1.
    settings = mixed_settings(data_root, "fedmix", tau=0.0)
    best, history = run_federated(settings)
    assert [h["round"] for h in history] == [1, 2]
    for entry in history:
        clients = entry["clients"]
        assert set(clients) == set(MIXED_CLIENTS)
        assert [clients[c]["supervision"] for c in MIXED_CLIENTS] == list(MIXED_SUPERVISION)
        assert all(c["participated"] for c in clients.values())
        assert sum(c["weight"] for c in clients.values()) == pytest.approx(1.0)
        pixel, blind = clients["pixel_site"], clients["blind_site"]
        assert pixel["usable_images"] == 2 and pixel["weight"] > 0 and pixel["train_loss"] > 0
        assert blind["usable_images"] == 2 and blind["weight"] > 0
        assert pixel["val_examples"] == 1 and clients["blind_site"]["val_examples"] == 0
        assert math.isfinite(entry["train_loss"]) and 0 <= entry["val_dice"] <= 1
    folder = best.parent
    assert json.loads((folder / "history.json").read_text()) == history
    model_1, config_1 = load_model(folder / "final.pt")
    model_2, config_2 = load_model(folder / "final.model_2.pt")
    assert (config_1["method"], config_1["model"], config_1["round"]) == ("fedmix", "model_1", 2)
    assert (config_2["model"], config_2["round"]) == ("model_2", 2)
    assert (folder / "best.model_2.pt").is_file()
    assert not all(torch.equal(p, q) for p, q in zip(model_1.parameters(), model_2.parameters()))


def test_fedst_simulation_warms_up_on_the_pixel_client(data_root):
    settings = mixed_settings(data_root, "fedst", warmup_rounds=1)
    _, history = run_federated(settings)
    first, second = (entry["clients"] for entry in history)
    assert [name for name, c in first.items() if c["participated"]] == ["pixel_site"]
    assert first["pixel_site"]["weight"] == 1.0 and first["box_site"]["weight"] == 0.0
    assert all(c["participated"] for c in second.values())
    assert sum(c["weight"] for c in second.values()) == pytest.approx(1.0)
