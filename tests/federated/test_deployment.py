"""Flower's deployment runtime on one machine: a SuperLink and two SuperNodes as separate
processes on 127.0.0.1, driven by ``flwr run <repo> <connection> --stream``; then a third SuperNode
joins the running deployment for the incremental rounds.

Each hospital is a SuperNode whose node config names the client and its data folder. Both run
their ClientApp in Flower's default ``subprocess`` isolation: a fresh ``flwr-clientapp``
process per message, from this same environment. Runtime dependency installation (``uv sync``,
on by default for the SuperLink) is switched off: it would need the network, and the apps import
the installed fednuclei. About 30 s per round of a tiny model, most of it process start-up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fednuclei.federated.checkpoint import RunStore
from fednuclei.methods.stages import continuing_from
from fednuclei.model.files import load_model
from tests.sample_data import CLIENTS, tiny_settings, write_client_data

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONNECTION = "local-test"
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 420
JOINER = "gamma"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"nothing listens on port {port} after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def federation(tmp_path):
    """A running SuperLink with one SuperNode per client; yields (environment, data folder, a
    function that starts one more SuperNode: a hospital joining, whose data is there too).

    Every process starts in its own session, so the finaliser can end it together with the
    SuperExec and app processes it spawned.
    """
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr_home"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    data = tmp_path / "hospitals"
    write_client_data(data, (*CLIENTS, JOINER))
    processes: list[tuple[subprocess.Popen, Path]] = []

    def start(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with log.open("w") as stream:
            process = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, cwd=tmp_path, stdout=stream,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        processes.append((process, log))
        return process, log

    try:
        link_port = free_port()
        link, link_log = start("superlink", "flower-superlink", "--insecure", "--port", str(link_port),
                               "--disable-runtime-dependency-installation")
        wait_for_port(link_port, link, link_log)

        def supernode(client: str) -> None:
            start(f"supernode-{client}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                  "--port", str(free_port()), "--node-config", f"client='{client}' data-path='{data}'")

        for client in CLIENTS:
            supernode(client)
        home = Path(env["FLWR_HOME"])
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
        )
        yield env, data, supernode
    finally:
        for process, log in processes:
            _stop(process)
            if process.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
                print(f"--- {log.name} (exit {process.returncode}) ---\n{log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's whole session, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def flwr_run(env: dict, tmp_path: Path, settings) -> subprocess.CompletedProcess:
    """``flwr run`` of ``settings`` (written as a settings file, without ``data_path``: each
    SuperNode brings its own)."""
    values = settings.to_dict()
    del values["data_path"]
    settings_file = tmp_path / f"settings-{settings.fingerprint()[:8]}.toml"
    settings_file.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return subprocess.run([str(BIN / "flwr"), "run", str(REPO), CONNECTION, "--stream", "--run-config",
                           f"settings='{settings_file}'"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_two_supernodes_train_then_a_third_joins_for_the_incremental_rounds(federation, tmp_path):
    env, data, supernode = federation
    checkpoints = tmp_path / "checkpoints"
    first = tiny_settings(data, checkpoint_dir=str(checkpoints))
    run = flwr_run(env, tmp_path, first)
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
    run = flwr_run(env, tmp_path, later)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (entry,) = RunStore(later).history()
    assert entry["round"] == 3 and entry["clients"][JOINER]["participated"] and entry["clients"][JOINER]["weight"] > 0
    assert RunStore(first).history() == history  # the first stage's run is left as it was
