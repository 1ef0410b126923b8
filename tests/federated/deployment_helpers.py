"""What the deployment tests share: Flower's processes on 127.0.0.1, each in its own session and
logging to a file, the ``flwr`` CLI's connection file, and ``flwr run`` of a settings file."""

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

from fednuclei.run_settings import RunSettings
from tests.sample_data import TRAIN_ROOT, VAL_ROOT

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 420


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_config(client: str, data: Path) -> str:
    """A SuperNode's ``--node-config``: the client it plays and where its data lie
    (:func:`tests.sample_data.write_client_data`'s layout)."""
    return f"client='{client}' data-path='{data}' train-roots='{TRAIN_ROOT}' val-roots='{VAL_ROOT}'"


def flower_env(folder: Path) -> dict[str, str]:
    """This environment with its own ``FLWR_HOME`` under ``folder`` and the Flower commands of
    this interpreter's environment first on ``PATH``."""
    return {**os.environ, "FLWR_HOME": str(folder / "flwr_home"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def write_connections(env: dict[str, str], default: str, connections: dict[str, dict[str, str | bool]]) -> None:
    """``$FLWR_HOME/config.toml``: the ``flwr`` CLI's SuperLink connections by name (each a table
    of ``address``, ``root-certificates``, ``insecure``...), ``default`` the one used unnamed."""
    home = Path(env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    text = f"[superlink]\ndefault = {json.dumps(default)}\n"
    for name, values in connections.items():
        text += f"\n[superlink.{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    (home / "config.toml").write_text(text)


class Processes:
    """Processes started in their own sessions (so that ending one ends the app processes it
    spawned too), each writing to ``<folder>/<name>.log``. Leaving the ``with`` block ends those
    still running, then the SuperExec processes they started (in sessions of their own, named by
    ``--parent-pid``), and prints the logs of those that failed."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder = folder
        self.env = env
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        """Start ``args`` (a command of this environment's ``bin`` folder first) in ``folder``."""
        log = self.folder / f"{name}.log"
        with log.open("w") as stream:
            process = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=self.env, cwd=self.folder, stdout=stream,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((process, log))
        return process, log

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        for process, log in self.started:
            stop(process)
            if process.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
                print(f"--- {log.name} (exit {process.returncode}) ---\n{log.read_text()[-2000:]}")
        _end_orphans({str(process.pid) for process, _ in self.started})


def _end_orphans(parents: set[str], grace: float = 10.0) -> None:
    """End the processes started with ``--parent-pid`` one of ``parents`` (or one of theirs):
    they leave by themselves once their parent is gone, unless still starting up; SIGKILL after
    ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while orphans := _children_by_parent_pid(parents):
        parents |= {str(pid) for pid in orphans}
        if time.monotonic() > deadline + grace:
            return
        if time.monotonic() > deadline:
            for pid in orphans:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)


def _children_by_parent_pid(parents: set[str]) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(arg == b"--parent-pid" and value.decode(errors="replace") in parents for arg, value in zip(args, args[1:])):
            found.append(int(cmdline.parent.name))
    return found


def stop(process: subprocess.Popen) -> None:
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


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    """Until something listens on 127.0.0.1:``port``; fails if ``process`` exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"nothing listens on port {port} after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def wait_for_exit(process: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT_S) -> int:
    """The exit status of ``process``; fails if it still runs after ``timeout`` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{log.stem} still runs after {timeout} s:\n{log.read_text()[-3000:]}")


def flwr(env: dict[str, str], cwd: Path, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``flwr <args>``, its output captured."""
    return subprocess.run([str(BIN / "flwr"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def flwr_run(env: dict[str, str], folder: Path, settings: RunSettings, connection: str) -> subprocess.CompletedProcess:
    """``flwr run`` of this repository's app on ``connection`` with ``settings`` (written to a
    settings file in ``folder``, without ``data_path``: each SuperNode brings its own)."""
    values = settings.to_dict()
    del values["data_path"]
    settings_file = folder / f"settings-{settings.fingerprint()[:8]}.toml"
    settings_file.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return flwr(env, folder, "run", str(REPO), connection, "--stream", "--run-config", f"settings='{settings_file}'",
                timeout=RUN_TIMEOUT_S)


def tls_superlink(processes: Processes, folder: Path, *options: str) -> tuple[int, Path]:
    """A SuperLink serving TLS on a free port of 127.0.0.1 (with ``options``), with certificates
    that ``deploy/make_certificates.sh`` makes under ``folder/certificates``, started and
    listening. Returns its port and the CA's certificate, which clients trust."""
    certificates = folder / "certificates"
    subprocess.run([str(REPO / "deploy" / "make_certificates.sh"), str(certificates)], check=True, capture_output=True)
    port = free_port()
    link, log = processes.start(
        "superlink", "flower-superlink", "--ssl-ca-certfile", str(certificates / "ca.crt"),
        "--ssl-certfile", str(certificates / "server.pem"), "--ssl-keyfile", str(certificates / "server.key"),
        *options, "--port", str(port), "--disable-runtime-dependency-installation")
    wait_for_port(port, link, log)
    return port, certificates / "ca.crt"
