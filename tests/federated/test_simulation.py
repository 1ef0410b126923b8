"""Flower simulation end to end: two clients, two rounds, then a resumed third round.

Ray start-up costs ~10 s, so the module runs exactly two simulations and shares the first.
"""

import json
from dataclasses import replace

import pytest

from fednuclei.federated.simulation import run_federated
from fednuclei.model.files import load_model
from tests.sample_data import tiny_settings, write_client_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("federated")
    write_client_data(root)
    return root


@pytest.fixture(scope="module")
def first_run(data_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLWR_HOME", str(data_root / "flwr_home"))  # keep ~/.flwr untouched
        settings = tiny_settings(data_root)
        best, history = run_federated(settings)
        yield settings, best, history


def test_simulation_writes_history_and_checkpoints(first_run):
    settings, best, history = first_run
    assert [h["round"] for h in history] == [1, 2]
    for entry in history:
        assert set(entry["clients"]) == set(settings.clients)
        assert all(c["usable_images"] == 2 and c["val_examples"] == 1 for c in entry["clients"].values())
        assert entry["train_loss"] > 0 and 0 <= entry["val_dice"] <= 1 and entry["round_seconds"] > 0
    folder = best.parent
    assert json.loads((folder / "history.json").read_text()) == history
    model, config = load_model(folder / "final.pt")
    assert config["round"] == 2 and config["width"] == 8 and config["method"] == "fedavg"
    _, best_config = load_model(best)
    assert best_config["val_dice"] == max(h["val_dice"] for h in history)


def test_rerun_with_more_rounds_resumes_after_the_last_finished_round(first_run):
    settings, best, history = first_run
    _, resumed = run_federated(replace(settings, num_server_rounds=3))
    assert [h["round"] for h in resumed] == [1, 2, 3]
    assert resumed[:2] == history  # rounds 1-2 were not run again
    _, config = load_model(best.parent / "final.pt")
    assert config["round"] == 3
