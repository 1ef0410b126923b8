"""fednuclei ServerApp: any federated method of the table over the hospitals, with rounds that
survive interruption.

Deployment (``flwr run . <connection>``) reads the settings from the run config
(:func:`~fednuclei.federated.run_config.settings_from_run_config`). Simulation
(:func:`fednuclei.federated.simulation.run_federated`) binds them instead, because
``flwr.simulation.run_simulation`` takes no run config. Both end in :func:`run_server`.
"""

from __future__ import annotations

import logging

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.pacing import PacedGrid
from fednuclei.federated.privacy import with_central_dp
from fednuclei.federated.progress import RoundProgress
from fednuclei.federated.run_config import settings_from_run_config
from fednuclei.federated.secure_aggregation import run_secure_rounds
from fednuclei.federated.strategy import MethodStrategy
from fednuclei.methods import method_of
from fednuclei.methods.common import build_model
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: the settings are those the run config points at."""
    run_server(grid, settings_from_run_config(context.run_config))


def run_server(grid: Grid, settings: RunSettings) -> RunStore:
    """Run the rounds of ``settings`` not yet in its checkpoint folder with
    :class:`~fednuclei.federated.strategy.MethodStrategy`, averaged with SecAgg+ when the
    settings ask for ``secure_aggregation`` (:mod:`fednuclei.federated.secure_aggregation`).

    Returns:
        the run's store (``best.pt``, ``final.pt``, ``history.json``).

    Raises:
        ValueError: no clients, a method that does not train on Flower, or a folder that already
            holds more rounds than asked for.
    """
    method = method_of(settings.method)
    if not method.federated:
        raise ValueError(f"method {method.name} does not train on Flower; its Kedro pipeline trains it")
    if not settings.clients:
        raise ValueError("the run names no clients: set 'clients' in the run's settings")
    store = RunStore(settings)
    model = build_model(settings)
    extras = {name: build_model(settings, which=k) for k, name in enumerate(method.extra_models, start=2)}
    done = store.load_latest(model, extras)
    store.tidy()  # repairs final/best after a crash between commit steps
    remaining = settings.num_server_rounds - done
    if remaining < 0:
        raise ValueError(f"{store.folder} already holds {len(store.history())} rounds (up to round {done}), more than "
                         f"num_server_rounds={settings.num_server_rounds}; ask for >= {done} rounds or use another "
                         "checkpoint_dir")
    if remaining == 0:
        logger.info("all rounds up to %d already finished in %s", done, store.folder)
        return store
    logger.info("%s %s %s: rounds %d..%d of %d clients", "resuming" if store.history() else "starting",
                settings.method, store.folder, done + 1, settings.num_server_rounds, len(settings.clients))
    starting = None
    if settings.proximal_mu > 0:  # the clients' FedProx reference: the models the run started from
        starting = [build_model(settings, which=k) for k in range(1, len(extras) + 2)]
        store.load_start(starting[0], dict(zip(extras, starting[1:])))
    progress = RoundProgress(settings.method, done + 1, settings.num_server_rounds)
    strategy = MethodStrategy(store, settings, model, extras, starting_models=starting, progress=progress)
    try:
        if settings.secure_aggregation:
            run_secure_rounds(grid, strategy, remaining)
        else:
            # Each message carries its client's settings (the strategy builds them): no config of Flower's loop.
            with_central_dp(strategy, settings).start(grid=PacedGrid(grid),
                                                      initial_arrays=ArrayRecord(model.state_dict()),
                                                      num_rounds=remaining, timeout=settings.round_timeout,
                                                      evaluate_fn=strategy.end_round)
    finally:
        progress.close()
    return store
