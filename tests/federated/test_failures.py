"""A federation whose clients fail: the real ServerApp and ClientApp in one process
(:class:`~tests.federated.in_process.InProcessGrid`), with broken client data, clients that
stop replying, and a quorum."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import MessageType

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.pacing import MIN_WAIT_S
from fednuclei.federated.server_app import run_server
from fednuclei.federated.strategy import RoundFailed
from fednuclei.methods import METHODS
from fednuclei.model.files import load_model
from tests.federated.in_process import InProcessGrid
from tests.sample_data import TRAIN_ROOT, write_client_data

THREE = ("alpha", "beta", "gamma")


@pytest.fixture
def three_clients(tmp_path, tiny_settings, task_identity):
    """Settings of a FedAvg run over three small pixel clients; ``changes`` override them."""
    write_client_data(tmp_path, THREE)
    return lambda **changes: tiny_settings(tmp_path, clients=THREE, **changes)


def federation(settings, drop=None) -> InProcessGrid:
    return InProcessGrid(make_client_app(METHODS, ClientSite.of(settings)), settings.clients, drop)


def silent(name: str, from_round: int):
    """Drops every training and validation message to client ``name`` from ``from_round`` on."""
    def drop(msg, client) -> bool:
        return client == name and "config" in msg.content and msg.content["config"]["server-round"] >= from_round
    return drop


def test_a_client_with_a_truncated_patch_stops_the_run_naming_it_and_its_error_kind(three_clients, caplog):
    settings = three_clients()
    image = sorted((_root(settings) / "beta" / "images").iterdir())[0]
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(RoundFailed, match=r"round 1: 1 of 3 clients failed to train: beta \(\w+Error\); at least 3 "
                                          r"must succeed") as failure:
        run_server(federation(settings), settings)
    assert str(image.parent) not in str(failure.value)  # the server never saw the path...
    assert image.name in caplog.text  # ...which the client's own log names
    assert RunStore(settings).history() == []  # nothing committed


def test_a_client_without_its_tile_list_stops_the_run_naming_it(three_clients):
    settings = three_clients()
    (_root(settings) / "gamma" / "tiles.json").unlink()
    with pytest.raises(RoundFailed, match=r"gamma \(FileNotFoundError\)"):
        run_server(federation(settings), settings)


def test_a_client_that_stops_replying_stops_the_run_at_that_round(three_clients):
    settings = three_clients(num_server_rounds=3)
    grid = federation(settings, silent("gamma", from_round=2))
    with pytest.raises(RoundFailed, match=r"round 2: 1 of 3 clients failed to train: gamma \(no reply in time\)"):
        run_server(grid, settings)
    assert [entry["round"] for entry in RunStore(settings).history()] == [1]
    # Round 1's training set the pace: round 2 waited three times its length (at least a minute), not round_timeout.
    train_waits = [timeout for kind, timeout in grid.waits if kind == MessageType.TRAIN]
    assert train_waits[0] == settings.round_timeout and train_waits[1] == MIN_WAIT_S


def test_below_full_quorum_the_run_goes_on_records_failures_and_picks_the_best_round_among_comparable_ones(
        three_clients):
    settings = three_clients(num_server_rounds=3, quorum=0.6)
    store = run_server(federation(settings, silent("gamma", from_round=2)), settings)
    history = store.history()
    assert [entry["round"] for entry in history] == [1, 2, 3]
    assert history[0]["failures"] == {"train": {}, "evaluate": {}} and history[0]["val_clients"] == list(THREE)
    for entry in history[1:]:
        assert entry["failures"] == {"train": {"gamma": "no reply in time"}, "evaluate": {"gamma": "no reply in time"}}
        assert entry["clients"]["gamma"]["error"] == "no reply in time" and entry["clients"]["gamma"]["weight"] == 0
        assert entry["val_clients"] == ["alpha", "beta"]
    # Rounds 2 and 3 are validated without gamma: only round 1 is validated by every client.
    assert store.best_path.exists() and _round_of(store.best_path) == 1


def _root(settings) -> Path:
    return Path(settings.data_path) / TRAIN_ROOT


def _round_of(path) -> int:
    return load_model(path)[1]["round"]
