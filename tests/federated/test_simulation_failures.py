"""Failing clients in Flower's simulation runtime (Ray): a client that raises, and one that hangs,
each stop the run with its name and kind, and the simulation shuts down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.pacing import MIN_WAIT_S
from fednuclei.federated.simulation import run_federated
from fednuclei.federated.strategy import RoundFailed
from fednuclei.methods import METHODS, Method
from fednuclei.methods.fedavg import fedavg_local_training
from tests.sample_data import TRAIN_ROOT, tiny_settings

pytestmark = pytest.mark.slow


def hangs_in_round_two(models, data, settings, device, local):
    """FedAvg, except that client ``beta`` never returns from its second round."""
    calls = Path(settings.data_path) / "calls"
    calls.mkdir(exist_ok=True)
    if data.name == "beta" and (calls / "beta").exists():
        time.sleep(3600)
    (calls / data.name).touch()
    return fedavg_local_training(models, data, settings, device, local)


HANGING = Method("hanging", "full", local_training=hangs_in_round_two)


@pytest.fixture
def flower_home(client_data_root, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(client_data_root / "flwr_home"))
    return client_data_root


def test_a_client_whose_patch_is_truncated_stops_the_simulation_naming_it(flower_home):
    settings = tiny_settings(flower_home, num_server_rounds=2)
    image = sorted((flower_home / TRAIN_ROOT / "alpha" / "images").iterdir())[0]
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(RoundFailed, match=r"round 1: 1 of 2 clients failed to train: alpha \(ImageReadError\)"):
        run_federated(settings)
    assert RunStore(settings).history() == []


def test_a_hung_client_is_cut_at_the_rounds_pace_and_the_simulation_shuts_down(flower_home, monkeypatch):
    monkeypatch.setitem(METHODS, HANGING.name, HANGING)
    settings = tiny_settings(flower_home, method="hanging", num_server_rounds=3, round_timeout=1800)
    started = time.monotonic()
    with pytest.raises(RoundFailed, match=r"round 2: 1 of 2 clients failed to train: beta \(no reply in time\)"):
        run_federated(settings)
    assert [entry["round"] for entry in RunStore(settings).history()] == [1]
    # Round 1 took seconds: round 2 waited about a minute for beta, not round_timeout's half hour.
    assert time.monotonic() - started < MIN_WAIT_S + 240
