"""Central differential privacy: Flower's clipping and noise around the FedAvg strategy, the
privacy spent per round, and the methods that refuse it."""

from __future__ import annotations

import math

import pytest
import torch

from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.privacy import epsilon_spent
from fednuclei.federated.server_app import run_server
from fednuclei.methods import METHODS, settings_for
from fednuclei.methods.common import build_model
from fednuclei.model.files import load_model
from tests.federated.in_process import InProcessGrid

CLIP = 0.05


def update_norm(settings, path) -> float:
    """L2 norm of the change from the initial model to the model at ``path``."""
    start, (end, _) = build_model(settings), load_model(path)
    return math.sqrt(sum(float(((b - a) ** 2).sum()) for a, b in zip(start.parameters(), end.parameters())))


def one_round(settings):
    grid = InProcessGrid(make_client_app(METHODS, ClientSite.of(settings)), settings.clients)
    return run_server(grid, settings)


def test_each_round_moves_the_model_by_at_most_the_clipping_norm_plus_the_noise(client_data_root, tiny_settings,
                                                                               task_identity):
    plain = one_round(tiny_settings(client_data_root, num_server_rounds=1, lr=1e-2,
                                    checkpoint_dir=str(client_data_root / "c1")))
    settings = tiny_settings(client_data_root, num_server_rounds=1, lr=1e-2, dp_noise_multiplier=1e-6,
                             dp_clipping_norm=CLIP, checkpoint_dir=str(client_data_root / "c2"))
    private = one_round(settings)
    assert update_norm(settings, plain.final_path) > 3 * CLIP  # without DP the clients move further...
    assert update_norm(settings, private.final_path) <= CLIP * (1 + 1e-3)  # ...with it, their mean update is clipped


def test_noise_is_added_and_the_privacy_spent_is_recorded_per_round(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root, num_server_rounds=2, dp_noise_multiplier=1.0, dp_clipping_norm=CLIP)
    store = one_round(settings)
    history = store.history()
    epsilons = [entry["dp_epsilon"] for entry in history]
    assert epsilons == [pytest.approx(epsilon_spent(settings, k)) for k in (1, 2)] and epsilons[0] < epsilons[1]
    # Noise of std z * C / n on every weight: the model moves far beyond the clipping norm.
    n_weights = sum(p.numel() for p in build_model(settings).parameters())
    expected = math.sqrt(2 * n_weights) * 1.0 * CLIP / len(settings.clients)
    assert update_norm(settings, store.final_path) == pytest.approx(expected, rel=0.2)
    # Equal weights under DP, whatever the clients' sizes.
    assert {c["weight"] for c in history[0]["clients"].values()} == {0.5}


def test_epsilon_follows_the_gaussian_mechanisms_rdp_bound():
    """Independent check: T Gaussian releases at noise multiplier z are (alpha, T alpha / 2 z^2)-RDP,
    so epsilon(delta) <= min over alpha of T alpha / 2 z^2 + log(1 / delta) / (alpha - 1)."""
    for z, rounds in ((0.5, 1), (1.0, 5), (2.0, 20)):
        settings = settings_for({"clients": ["a", "b", "c"], "dp_noise_multiplier": z, "dp_clipping_norm": 1.0})
        bound = min(rounds * a / (2 * z * z) + math.log(1 / settings.dp_delta) / (a - 1)
                    for a in torch.linspace(1.01, 200, 20000).tolist())
        assert 0.5 * bound < epsilon_spent(settings, rounds) <= bound + 1e-6
    assert epsilon_spent(settings_for({"clients": ["a"]}), 3) is None


@pytest.mark.parametrize("values, message", [
    ({"method": "fedmix", "dp_noise_multiplier": 1.0, "dp_clipping_norm": 1.0}, "fedmix cannot train under central DP"),
    ({"method": "fedst", "dp_noise_multiplier": 1.0, "dp_clipping_norm": 1.0}, "fedst cannot train under central DP"),
    ({"dp_noise_multiplier": 1.0}, "needs dp_clipping_norm > 0"),
    ({"dp_noise_multiplier": 1.0, "dp_clipping_norm": 1.0, "join_rounds": [0, 3]}, "every client trains every round"),
    ({"quorum": 0.0}, r"quorum must be in \(0, 1\]"),
])
def test_settings_that_central_dp_or_the_quorum_cannot_honour_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        settings_for({"clients": ["a", "b"], "supervision": ["pixel", "bbox"], **values})
