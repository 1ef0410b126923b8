"""Flower's deployment runtime on one machine: a SuperLink and two SuperNodes as separate
processes on 127.0.0.1, driven by ``flwr run <repo> <connection> --stream``.

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

from fednuclei.model.files import load_model
from tests.sample_data import CLIENTS, tiny_settings, write_client_data

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONNECTION = "local-test"
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 420


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
    """A running SuperLink with one SuperNode per client; yields (environment, data folder).

    Every process starts in its own session, so the finaliser can end it together with the
    SuperExec and app processes it spawned.
    """
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr_home"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    data = tmp_path / "hospitals"
    write_client_data(data)
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
        for client in CLIENTS:
            start(f"supernode-{client}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                  "--port", str(free_port()), "--node-config", f"client='{client}' data-path='{data}'")
        home = Path(env["FLWR_HOME"])
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
        )
        yield env, data
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


def test_two_supernodes_train_two_fedavg_rounds(federation, tmp_path):
    env, data = federation
    checkpoints = tmp_path / "checkpoints"
    settings = tiny_settings(data, checkpoint_dir=str(checkpoints))
    values = settings.to_dict()
    del values["data_path"]  # each SuperNode brings its own
    settings_file = tmp_path / "fedavg.toml"
    settings_file.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))

    run = subprocess.run([str(BIN / "flwr"), "run", str(REPO), CONNECTION, "--stream", "--run-config",
                          f"settings='{settings_file}'"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    folders = list(checkpoints.glob("run-*"))
    assert len(folders) == 1, f"no checkpoint folder; flwr run said:\n{run.stdout[-3000:]}"
    history = json.loads((folders[0] / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2]
    assert all(set(h["clients"]) == set(CLIENTS) for h in history)
    model, config = load_model(folders[0] / "final.pt")
    assert config["round"] == 2 and config["width"] == settings.width
    assert (folders[0] / "best.pt").is_file()
