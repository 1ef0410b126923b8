"""Secure aggregation (Flower's SecAgg+): which settings may use it, that its mean is FedAvg's,
in one process, and a deployment over TLS that runs it and times it against a plain round."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.server_app import run_server
from fednuclei.methods import METHODS, settings_for
from fednuclei.model.files import load_model
from tests.federated.deployment_helpers import (
    Processes,
    flower_env,
    flwr_run,
    free_port,
    site_config,
    tls_superlink,
    write_connections,
)
from tests.federated.in_process import InProcessGrid
from tests.sample_data import CLIENTS, write_client_data

THREE = ("alpha", "beta", "gamma")


def relative_difference(path_a, path_b) -> float:
    """||a - b|| / ||b|| over every weight of two saved models."""
    (a, _), (b, _) = load_model(path_a), load_model(path_b)
    a = torch.cat([v.flatten() for v in a.state_dict().values()])
    b = torch.cat([v.flatten() for v in b.state_dict().values()])
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("method", ["fedavg", "fedavg_pixel"])
def test_fedavg_and_its_pixel_variant_accept_secure_aggregation(method):
    assert settings_for({"method": method, "clients": ["a", "b"], "secure_aggregation": True}).secure_aggregation


@pytest.mark.parametrize(("method", "reason"), [
    ("fedmix", "depend on what each client reports .its loss"),
    ("fedst", "server must see each client's reply"),
    ("fedrgd", "not the clients' training images"),
    ("local", "does not aggregate on Flower"),
    ("centralized", "does not aggregate on Flower"),
])
def test_other_methods_refuse_secure_aggregation_saying_why(method, reason):
    with pytest.raises(ValueError, match=rf"method {method} cannot use secure_aggregation: .*{reason}.*methods that can: "
                                         r"\['fedavg', 'fedavg_pixel'\]"):
        settings_for({"method": method, "clients": ["a", "b"], "supervision": ["pixel", "bbox"],
                      "secure_aggregation": True})


@pytest.mark.parametrize(("changes", "message"), [
    ({"dp_noise_multiplier": 1.0, "dp_clipping_norm": 1.0}, "exclude each other"),
    ({"proximal_mu": 0.1}, "set proximal_mu = 0"),
    ({"clients": ["a"]}, "at least 2 clients"),
    ({"join_rounds": [0, 3]}, r"at least 2 clients training from round 1 .*got \['a'\]"),
])
def test_secure_aggregation_refuses_what_it_cannot_carry(changes, message):
    with pytest.raises(ValueError, match=message):
        settings_for({"clients": ["a", "b"], "secure_aggregation": True, **changes})


def test_secure_aggregation_leaves_the_fingerprint_alone():
    settings = settings_for({"clients": ["a", "b"]})
    secure = replace(settings, secure_aggregation=True, secure_max_images=100)
    assert secure.fingerprint() == settings.fingerprint()


def test_a_client_above_secure_max_images_stops_the_round(tmp_path, tiny_settings, task_identity):
    write_client_data(tmp_path, THREE)
    settings = tiny_settings(tmp_path, clients=THREE, secure_aggregation=True, secure_max_images=1)
    with pytest.raises(ValueError, match=r"more images than secure_max_images = 1"):
        run_server(InProcessGrid(make_client_app(METHODS, ClientSite.of(settings)), THREE), settings)
    assert RunStore(settings).history() == []


def test_the_securely_aggregated_model_is_fedavgs_mean(tmp_path, tiny_settings, task_identity, caplog):
    """Real ClientApps in this process, two rounds: the SecAgg+ run ends within quantisation of
    the plain run's model, with the same per-client history."""
    write_client_data(tmp_path, THREE)
    models = {}
    for secure in (False, True):
        # each client trains on its 2 patches: a tight bound keeps the quantisation exact
        settings = tiny_settings(tmp_path, clients=THREE, secure_aggregation=secure, secure_max_images=2,
                                 checkpoint_dir=str(tmp_path / f"checkpoints-{secure}"))
        grid = InProcessGrid(make_client_app(METHODS, ClientSite.of(settings)), THREE)
        with caplog.at_level("DEBUG", logger="flwr"):
            store = run_server(grid, settings)
        history = store.history()
        assert [h["round"] for h in history] == [1, 2]
        assert all(h["clients"][name]["weight"] == pytest.approx(1 / 3) for h in history for name in THREE)
        assert all(h["val_dice"] is not None and h["train_loss"] > 0 for h in history)
        models[secure] = (store.final_path, history)
    assert "[Stage 3] Received key shares" in caplog.text
    difference = relative_difference(models[True][0], models[False][0])
    print(f"relative difference of the SecAgg+ model from plain FedAvg's: {difference:.2e}")
    assert difference < 1e-3
    plain, secure = models[False][1], models[True][1]
    assert [h["train_loss"] for h in secure] == pytest.approx([h["train_loss"] for h in plain], rel=1e-3)


@pytest.mark.slow
def test_secure_aggregation_over_tls_matches_plain_fedavg_and_costs_some_time(tmp_path, tiny_settings):
    """Flower's deployment runtime with TLS on 127.0.0.1 (certificates from
    deploy/make_certificates.sh, as the README's deployment has them), two SuperNodes: one round
    of plain FedAvg, then the same round with secure_aggregation. Prints both rounds' times."""
    env = flower_env(tmp_path)
    data = tmp_path / "hospitals"
    write_client_data(data, CLIENTS)
    with Processes(tmp_path, env) as processes:
        link_port, ca = tls_superlink(processes, tmp_path)
        for client in CLIENTS:
            processes.start(f"supernode-{client}", "flower-supernode", "--root-certificates",
                            str(ca), "--superlink", f"127.0.0.1:{link_port}",
                            "--port", str(free_port()), "--node-config", site_config(client, data))
        write_connections(env, "hospitals", {"hospitals": {"address": f"127.0.0.1:{link_port}",
                                                           "root-certificates": str(ca)}})
        runs = {}
        for secure in (False, True):
            settings = tiny_settings(data, num_server_rounds=1, secure_aggregation=secure, secure_max_images=2,
                                     checkpoint_dir=str(tmp_path / f"checkpoints-{secure}"))
            started = time.monotonic()
            run = flwr_run(env, tmp_path, settings, "hospitals")
            wall = time.monotonic() - started
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            (entry,) = RunStore(settings).history()
            assert set(entry["clients"]) == set(CLIENTS) and entry["val_dice"] is not None
            runs[secure] = (RunStore(settings).final_path, entry["round_seconds"], wall, run.stdout)
    assert "Secure aggregation completed" in runs[True][3]
    assert "Secure aggregation" not in runs[False][3]
    difference = relative_difference(runs[True][0], runs[False][0])
    print(f"\nplain FedAvg round: {runs[False][1]:.1f} s (flwr run {runs[False][2]:.1f} s); "
          f"SecAgg+ round: {runs[True][1]:.1f} s (flwr run {runs[True][2]:.1f} s); "
          f"relative model difference {difference:.2e}")
    assert difference < 1e-3

