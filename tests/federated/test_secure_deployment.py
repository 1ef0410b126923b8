"""The deployment of the README's "Deploying across sites", secure: TLS between every process and
SuperNode authentication, on 127.0.0.1.

The server's certificates come from ``deploy/make_certificates.sh`` and each hospital's key pair
from ``ssh-keygen``, the commands the README gives. The SuperLink serves TLS and admits only
SuperNodes whose public key was registered with ``flwr supernode register``; the SuperNodes trust
the deployment's CA (``--root-certificates``) and sign their requests with their private key
(``--auth-supernode-private-key``); ``flwr`` connects with ``root-certificates`` in its
connection. One short FedAvg round runs to completion over that. Refused: a SuperNode without a
key, a hospital whose key is not registered (until it is), and connections that do not trust the
deployment's CA.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fednuclei.federated.checkpoint import RunStore
from tests.federated.deployment_helpers import (
    START_TIMEOUT_S,
    Processes,
    flower_env,
    flwr,
    flwr_run,
    free_port,
    site_config,
    tls_superlink,
    wait_for_exit,
    write_connections,
)
from tests.sample_data import CLIENTS, tiny_settings, write_client_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("ssh-keygen")),
                       reason="needs the openssl and ssh-keygen commands"),
]

CONNECTION = "hospitals"
WITHOUT_CA = "hospitals-without-ca"  # the same SuperLink, trusting only the system's CAs
UNREGISTERED = "gamma"  # a hospital with data and a key pair, whose key the server has not registered


def make_key_pair(keys: Path, client: str) -> Path:
    """The hospital's key pair, as the README makes it; returns the private key (the public one
    is beside it, ``.pub``)."""
    keys.mkdir(exist_ok=True)
    private = keys / client
    subprocess.run(["ssh-keygen", "-t", "ecdsa", "-b", "384", "-N", "", "-f", str(private)], check=True,
                   capture_output=True)
    return private


def register(env: dict, folder: Path, public_key: Path) -> None:
    result = flwr(env, folder, "supernode", "register", str(public_key), CONNECTION)
    assert result.returncode == 0, result.stdout + result.stderr


def online_nodes(env: dict, folder: Path) -> list[str]:
    result = flwr(env, folder, "supernode", "ls", CONNECTION, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return [node["node-id"] for node in json.loads(result.stdout)["nodes"] if node["status"] == "online"]


@pytest.fixture
def secure_federation(tmp_path):
    """A SuperLink with TLS and SuperNode authentication, the clients' keys registered and their
    SuperNodes started; yields (environment, data folder, a function that starts a hospital's
    SuperNode: client name, its private key or None, and whether it trusts the CA)."""
    env = flower_env(tmp_path)
    data = tmp_path / "hospitals"
    write_client_data(data, (*CLIENTS, UNREGISTERED))
    with Processes(tmp_path, env) as processes:
        link_port, ca = tls_superlink(processes, tmp_path, "--enable-supernode-auth")
        write_connections(env, CONNECTION, {
            CONNECTION: {"address": f"127.0.0.1:{link_port}", "root-certificates": str(ca)},
            WITHOUT_CA: {"address": f"127.0.0.1:{link_port}"},
        })

        def supernode(client: str, private_key: Path | None, trusts_ca: bool = True, name: str = ""):
            tls = ["--root-certificates", str(ca)] if trusts_ca else []
            key = ["--auth-supernode-private-key", str(private_key)] if private_key else []
            return processes.start(
                name or f"supernode-{client}", "flower-supernode", *tls, *key, "--superlink", f"127.0.0.1:{link_port}",
                "--port", str(free_port()), "--node-config", site_config(client, data))

        for client in CLIENTS:
            private_key = make_key_pair(tmp_path / "keys", client)
            register(env, tmp_path, private_key.with_suffix(".pub"))
            supernode(client, private_key)
        yield env, data, supernode


def test_one_round_over_tls_with_registered_supernodes_only(secure_federation, tmp_path):
    env, data, supernode = secure_federation
    keys = tmp_path / "keys"

    # Refused, all three at once:
    # - a SuperNode that brings no key: it would register itself, which the SuperLink forbids
    #   (--enable-supernode-auth; without it, any SuperNode is admitted);
    # - a hospital whose key is not registered: the SuperLink does not activate its SuperNode;
    # - a registered hospital that does not trust the deployment's CA: its TLS handshake fails.
    # Each SuperNode gives up. (Were one of the first two connected, the run below would fail:
    # it names no such client.)
    unregistered_key = make_key_pair(keys, UNREGISTERED)
    refusals = [
        (supernode(UNREGISTERED, None, name="supernode-keyless"), "All SuperNodes must be registered via the CLI"),
        (supernode(UNREGISTERED, unregistered_key), "Failed to activate SuperNode"),
        (supernode(CLIENTS[0], keys / CLIENTS[0], trusts_ca=False, name="supernode-no-ca"), "CERTIFICATE_VERIFY_FAILED"),
    ]
    for (process, log), reason in refusals:
        assert wait_for_exit(process, log) != 0, log.read_text()[-3000:]
        assert reason in log.read_text(), log.read_text()[-3000:]
    # Nor does the flwr CLI reach the SuperLink without the CA certificate (with it, it does: the
    # registrations above and the run below use the same address).
    listing = flwr(env, tmp_path, "supernode", "ls", WITHOUT_CA)
    assert listing.returncode != 0, listing.stdout

    checkpoints = tmp_path / "checkpoints"
    settings = tiny_settings(data, checkpoint_dir=str(checkpoints), num_server_rounds=1)
    run = flwr_run(env, tmp_path, settings, CONNECTION)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    history = RunStore(settings).history()
    assert [h["round"] for h in history] == [1], f"flwr run said:\n{run.stdout[-3000:]}"
    assert set(history[0]["clients"]) == set(CLIENTS)
    assert RunStore(settings).final_path.is_file()
    assert len(online_nodes(env, tmp_path)) == len(CLIENTS)

    # Once the server registers its key, the same hospital's SuperNode is admitted.
    register(env, tmp_path, unregistered_key.with_suffix(".pub"))
    admitted, admitted_log = supernode(UNREGISTERED, unregistered_key, name="supernode-gamma-registered")
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(online_nodes(env, tmp_path)) < len(CLIENTS) + 1:
        if admitted.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"registered SuperNode not online (exit {admitted.poll()}):\n{admitted_log.read_text()[-3000:]}")
        time.sleep(1)
