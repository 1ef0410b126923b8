"""Run the Flower apps on one machine with Flower's simulation runtime (Ray).

The settings are bound into a ServerApp built here, which calls the same
:func:`~fednuclei.federated.server_app.run_server` as the deployed one. The ClientApp is the
deployed one's code bound to a copy of the method table and to the clients' sites (where their
data lie), which travel to the simulated clients (Ray workers) with the app, so a method
declared at run time trains too.

Flower 1.42 deprecates ``flwr.simulation.run_simulation`` in favour of ``flwr run`` against a
local SuperLink, which loads the apps from a packaged project in another process: a Kedro node
could pass neither its in-memory settings and method table nor get the run's exception back.
:func:`_simulate` therefore keeps the call, and silences that one deprecation notice.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.server_app import run_server
from fednuclei.methods import METHODS
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

# The environment of a simulation, and so of Ray's processes:
# * Ray runs on loopback only (fednuclei.RAY_LOOPBACK_ONLY), but its dashboard process asks cloud
#   metadata services (169.254.169.254, metadata.google.internal) which cloud it runs on, usage
#   statistics off or not: HTTP goes through a loopback port where nothing listens, save to loopback;
# * Ray keeps CUDA visible to clients that ask for no GPU (its coming default), without a warning;
# * the clients' Flower logs only errors (their own failures reach the server, see strategy).
SIMULATION_ENVIRONMENT = {
    **{case(name): value for name, value in {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                                              "no_proxy": "127.0.0.1,localhost"}.items()
       for case in (str.lower, str.upper)},
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "FLWR_LOG_LEVEL": "ERROR",
}


def run_federated(settings: RunSettings, num_clients: int | None = None,
                  *, verbose: bool | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Simulate a run of the federated method ``settings.method``, one virtual SuperNode per
    client; resumes an interrupted run.

    Args:
        settings: the run. Relative ``data_path`` and ``checkpoint_dir`` are resolved against
            the current folder now, before Ray workers (with their own working folders) see them.
        num_clients: SuperNodes to start; must equal ``len(settings.clients)`` (the default):
            each SuperNode plays one client (``partition-id`` i plays ``clients[i]``).
        verbose: Flower's debug logging, in the clients too (by default when Flower's logger is at DEBUG).

    Returns:
        the path of the best model (``best.pt``, by validation Dice; ``final.pt`` lies next to
        it; for FedMix this is model 1, with model 2 in ``best.model_2.pt``) and the run's
        history, one dict per round.
    """
    num_clients = len(settings.clients) if num_clients is None else num_clients
    if num_clients != len(settings.clients) or num_clients == 0:
        raise ValueError(f"num_clients={num_clients} must equal the number of named clients "
                         f"{list(settings.clients)} (at least one)")
    settings = replace(settings, data_path=str(Path(settings.data_path).expanduser().resolve()),
                       checkpoint_dir=str(Path(settings.checkpoint_dir).expanduser().resolve()))
    store = RunStore(settings)
    if store.history() and store.last_round >= settings.num_server_rounds:
        logger.info("all rounds up to %d already finished in %s", store.last_round, store.folder)
        return store.best_path, store.history()
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            run_server(grid, settings)
        except BaseException:
            _stop_clients()
            raise

    if verbose is None:
        verbose = logging.getLogger("flwr").isEnabledFor(logging.DEBUG)
    resources = backend_config(settings)
    logger.info(_describe(settings, resources))
    _simulate(server_app, make_client_app(dict(METHODS), ClientSite.of(settings)), num_clients, resources, verbose)
    return store.best_path, store.history()


def _simulate(server_app: ServerApp, client_app: ClientApp, num_clients: int, backend: dict[str, Any],
              verbose: bool) -> None:
    """``run_simulation`` without its deprecation notice (see the module docstring)."""
    flower = logging.getLogger("flwr")
    flower.addFilter(_not_run_simulation_deprecation)
    environment = {**SIMULATION_ENVIRONMENT, "FLWR_LOG_LEVEL": "DEBUG"} if verbose else SIMULATION_ENVIRONMENT
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_clients,
                       backend_config=backend, verbose_logging=verbose)
    finally:
        flower.removeFilter(_not_run_simulation_deprecation)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def _stop_clients() -> None:
    """End the simulated clients of a failed run: Flower's simulation runtime waits for every
    client still working before it shuts down, so one that hangs would hang the run after the
    server gave up on it. Ray offers no public handle to the actors Flower created: they are
    found in Ray's actor table, by this job."""
    import ray  # loaded by the simulation runtime already

    job = ray.JobID.from_hex(ray.get_runtime_context().get_job_id())
    for actor in ray._private.state.actors(job_id=job).values():
        if actor["State"] == "ALIVE" and actor["ActorClassName"].endswith("ClientAppActor"):
            os.kill(actor["Pid"], signal.SIGKILL)


def _not_run_simulation_deprecation(record: logging.LogRecord) -> bool:
    return not (record.levelno == logging.WARNING and "`run_simulation` function is deprecated" in record.getMessage())


def backend_config(settings: RunSettings) -> dict[str, Any]:
    """Ray resources per simulated client: a GPU share when CUDA is available, else CPU only."""
    gpus = settings.gpu_fraction if torch.cuda.is_available() else 0.0
    return {"client_resources": {"num_cpus": settings.cpus_per_client, "num_gpus": gpus}}


def _describe(settings: RunSettings, resources: dict[str, Any]) -> str:
    gpus = resources["client_resources"]["num_gpus"]
    device = f"cuda ({torch.cuda.get_device_name(0)}), {gpus} GPU each" if gpus else "cpu"
    return (f"simulating {settings.method} rounds {settings.first_round}..{settings.num_server_rounds}: "
            f"{len(settings.clients)} clients on {device}, {settings.cpus_per_client} CPU(s) each")
