"""What the ServerApp decides before any round: resume point, nothing left to do, refusals."""

from dataclasses import replace

import pytest

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.server_app import run_server
from fednuclei.methods.common import build_model


class UnusedGrid:
    """A Grid that must not be asked anything: no round is due."""

    def __getattr__(self, name):
        raise AssertionError(f"the server used the grid ({name}) although no round was due")


@pytest.fixture
def two_round_store(tmp_path, tiny_settings):
    settings = tiny_settings(tmp_path)
    store, model = RunStore(settings), build_model(settings)
    for server_round in (1, 2):
        store.commit_round(model, {"round": server_round, "train_loss": 1.0, "val_dice": 0.5, "clients": {}})
    return settings, store


def test_finished_run_is_not_run_again(two_round_store):
    settings, store = two_round_store
    assert run_server(UnusedGrid(), settings).folder == store.folder
    assert len(store.history()) == 2


def test_fewer_rounds_than_finished_is_refused(two_round_store):
    settings, _ = two_round_store
    with pytest.raises(ValueError, match="already holds 2 rounds"):
        run_server(UnusedGrid(), replace(settings, num_server_rounds=1))


def test_a_run_without_clients_is_refused(tmp_path, tiny_settings):
    with pytest.raises(ValueError, match="names no clients"):
        run_server(UnusedGrid(), tiny_settings(tmp_path, clients=()))
