"""A method is one table entry plus its own local training: this module declares a toy one and
runs it on Flower, touching no other file."""

import pytest
import torch

from fednuclei.federated.simulation import run_federated
from fednuclei.methods import METHODS, Method
from fednuclei.methods.common import LocalResult, build_model
from fednuclei.model.files import load_model
from tests.sample_data import tiny_settings

pytestmark = pytest.mark.slow


def add_one(models, data, settings, device, local) -> LocalResult:
    """The toy's local training: every weight + 1, every patch usable, loss 0.5."""
    (model,) = models
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    return LocalResult(usable_images=len(data.train), loss=0.5, seconds=0.0)


TOY = Method("toy", "full", local_training=add_one)


def test_a_method_declared_here_trains_one_round_on_flower(client_data_root, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(client_data_root / "flwr_home"))
    monkeypatch.setitem(METHODS, TOY.name, TOY)
    settings = tiny_settings(client_data_root, method="toy", num_server_rounds=1)
    best, history = run_federated(settings)
    model, config = load_model(best.parent / "final.pt")
    assert config["method"] == "toy" and config["round"] == 1
    initial = build_model(settings)
    # Both clients added 1 and were averaged by size: the global model is the initial one + 1.
    assert all(torch.allclose(p, q + 1.0) for p, q in zip(model.parameters(), initial.parameters()))
    clients = history[0]["clients"]
    assert {name: c["weight"] for name, c in clients.items()} == {"alpha": 0.5, "beta": 0.5}
    assert history[0]["train_loss"] == pytest.approx(0.5)
