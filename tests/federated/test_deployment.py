"""Flower's deployment runtime on one machine: a SuperLink and two SuperNodes as separate
processes on 127.0.0.1, driven by ``flwr run <repo> <connection> --stream``; then a third SuperNode
joins the running deployment for the incremental rounds.

Each hospital is a SuperNode whose node config names the client and its data folder. Both run
their ClientApp in Flower's default ``subprocess`` isolation: a fresh ``flwr-clientapp``
process per message, from this same environment. Runtime dependency installation (``uv sync``,
on by default for the SuperLink) is switched off: it would need the network, and the apps import
the installed fednuclei. About 30 s per round of a tiny model, most of it process start-up.
The processes talk without TLS (``--insecure``), as in a local trial; test_secure_deployment.py
runs the deployment the README describes, with TLS and SuperNode authentication.
"""

from __future__ import annotations

import pytest

from fednuclei.federated.checkpoint import RunStore
from fednuclei.methods.stages import continuing_from
from fednuclei.model.files import load_model
from tests.federated.deployment_helpers import (
    Processes,
    flower_env,
    flwr_run,
    free_port,
    site_config,
    wait_for_port,
    write_connections,
)
from tests.sample_data import CLIENTS, tiny_settings, write_client_data

pytestmark = pytest.mark.slow

CONNECTION = "local-test"
JOINER = "gamma"


@pytest.fixture
def federation(tmp_path):
    """A running SuperLink with one SuperNode per client; yields (environment, data folder, a
    function that starts one more SuperNode: a hospital joining, whose data is there too).

    Every process starts in its own session, so the finaliser can end it together with the
    SuperExec and app processes it spawned.
    """
    env = flower_env(tmp_path)
    data = tmp_path / "hospitals"
    write_client_data(data, (*CLIENTS, JOINER))
    with Processes(tmp_path, env) as processes:
        link_port = free_port()
        link, link_log = processes.start("superlink", "flower-superlink", "--insecure", "--port", str(link_port),
                                         "--disable-runtime-dependency-installation")
        wait_for_port(link_port, link, link_log)

        def supernode(client: str) -> None:
            processes.start(f"supernode-{client}", "flower-supernode", "--insecure", "--superlink",
                            f"127.0.0.1:{link_port}", "--port", str(free_port()),
                            "--node-config", site_config(client, data))

        for client in CLIENTS:
            supernode(client)
        write_connections(env, CONNECTION, {CONNECTION: {"address": f"127.0.0.1:{link_port}", "insecure": True}})
        yield env, data, supernode


def test_two_supernodes_train_then_a_third_joins_for_the_incremental_rounds(federation, tmp_path):
    env, data, supernode = federation
    checkpoints = tmp_path / "checkpoints"
    first = tiny_settings(data, checkpoint_dir=str(checkpoints))
    run = flwr_run(env, tmp_path, first, CONNECTION)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    store = RunStore(first)
    history = store.history()
    assert [h["round"] for h in history] == [1, 2], f"flwr run said:\n{run.stdout[-3000:]}"
    assert all(set(h["clients"]) == set(CLIENTS) for h in history)
    model, config = load_model(store.final_path)
    assert config["round"] == 2 and config["width"] == first.width

    supernode(JOINER)  # a hospital joins the running deployment
    later = continuing_from(tiny_settings(data, checkpoint_dir=str(checkpoints), clients=(*CLIENTS, JOINER),
                                          join_rounds=(0, 0, 3), first_round=3, num_server_rounds=3), store.best_path)
    run = flwr_run(env, tmp_path, later, CONNECTION)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (entry,) = RunStore(later).history()
    assert entry["round"] == 3 and entry["clients"][JOINER]["participated"] and entry["clients"][JOINER]["weight"] > 0
    assert RunStore(first).history() == history  # the first stage's run is left as it was
