"""Run the Flower apps on one machine with Flower's simulation runtime (Ray).

``flwr.simulation.run_simulation`` (Flower 1.42) has no run-config parameter: its ServerApp
context gets an empty ``run_config``. The settings are therefore bound into a ServerApp built
here, which calls the same :func:`~fednuclei.federated.server_app.run_server` as the deployed one.
The ClientApp is the deployed one's code bound to a copy of the method table, which travels to
the simulated clients (Ray workers) with the app, so a method declared at run time trains too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.client_app import make_client_app
from fednuclei.federated.server_app import run_server
from fednuclei.methods import METHODS
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)


def run_federated(settings: RunSettings, num_clients: int | None = None,
                  *, verbose: bool = False) -> tuple[Path, list[dict[str, Any]]]:
    """Simulate a run of the federated method ``settings.method``, one virtual SuperNode per
    client; resumes an interrupted run.

    Args:
        settings: the run. Relative ``data_path`` and ``checkpoint_dir`` are resolved against
            the current folder now, before Ray workers (with their own working folders) see them.
        num_clients: SuperNodes to start; must equal ``len(settings.clients)`` (the default):
            each SuperNode plays one client (``partition-id`` i plays ``clients[i]``).
        verbose: Flower's debug logging.

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
        run_server(grid, settings)

    run_simulation(server_app=server_app, client_app=make_client_app(dict(METHODS)), num_supernodes=num_clients,
                   backend_config=backend_config(settings), verbose_logging=verbose)
    return store.best_path, store.history()


def backend_config(settings: RunSettings) -> dict[str, Any]:
    """Ray resources per simulated client: a GPU share when CUDA is available, else CPU only."""
    gpus = settings.gpu_fraction if torch.cuda.is_available() else 0.0
    device = f"cuda ({torch.cuda.get_device_name(0)}), {gpus} GPU per client" if gpus else "cpu"
    logger.info("simulation clients run on %s with %d CPU(s) each", device, settings.cpus_per_client)
    return {"client_resources": {"num_cpus": settings.cpus_per_client, "num_gpus": gpus}}
