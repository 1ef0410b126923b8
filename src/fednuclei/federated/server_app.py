"""fednuclei ServerApp: FedAvg, FedMix, FedST or FedRGD over the hospitals (``method`` of the
settings), with rounds that survive interruption.

Deployment (``flwr run . <connection>``) reads the settings from the run config: the defaults in
``[tool.flwr.app.config]`` of pyproject.toml plus ``--run-config`` overrides. Simulation
(:func:`fednuclei.federated.simulation.run_federated`) binds them instead, because
``flwr.simulation.run_simulation`` takes no run config. Both end in :func:`run_server`.
"""

from __future__ import annotations

import logging

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.settings import FederatedSettings
from fednuclei.federated.strategies import build_strategy
from fednuclei.federated.task import build_model

logger = logging.getLogger(__name__)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: the settings are the run config."""
    run_server(grid, FederatedSettings.from_run_config(context.run_config))


def run_server(grid: Grid, settings: FederatedSettings) -> RunStore:
    """Run the rounds of ``settings`` not yet in its checkpoint folder with the strategy of
    ``settings.method`` (:func:`~fednuclei.federated.strategies.build_strategy`).

    Returns:
        the run's store (``best.pt``, ``final.pt``, ``history.json``).

    Raises:
        ValueError: no clients, or the folder already holds more rounds than asked for.
    """
    if not settings.clients:
        raise ValueError("the run names no clients: set run config 'clients' (comma-separated names)")
    store = RunStore(settings)
    model = build_model(settings)
    extras = {"model_2": build_model(settings, which=2)} if settings.method == "fedmix" else {}
    done = store.load_latest(model, extras)
    store.tidy()  # repairs final/best after a crash between commit steps
    remaining = settings.num_server_rounds - done
    if remaining < 0:
        raise ValueError(f"{store.folder} already holds {done} rounds, more than num-server-rounds="
                         f"{settings.num_server_rounds}; ask for >= {done} rounds or use another checkpoint_dir")
    if remaining == 0:
        logger.info("all %d rounds already finished in %s", done, store.folder)
        return store
    logger.info("%s %s %s: rounds %d..%d of %d clients", "resuming" if done else "starting", settings.method,
                store.folder, done + 1, settings.num_server_rounds, len(settings.clients))
    strategy = build_strategy(settings, store, model, **extras)
    # The settings travel with every message: clients need no run config of their own.
    config = settings.to_run_config()
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=remaining,
                   timeout=settings.round_timeout, train_config=ConfigRecord(config),
                   evaluate_config=ConfigRecord(config), evaluate_fn=strategy.end_round)
    return store
