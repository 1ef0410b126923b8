"""Secure aggregation: Flower's SecAgg+ for the methods whose aggregate is FedAvg's mean.

With ``secure_aggregation`` the server learns each round only the clients' mean model, weighted
by their training images, and those image counts, never one client's model: each client masks
its (quantised) weights with random masks that cancel in the sum, and the server removes what
is left of them with key shares that a majority of the clients hand over (Bonawitz et al. 2017;
Bell et al. 2020). Flower implements it on its legacy strategy API only:
:class:`flwr.server.workflow.SecAggPlusWorkflow` is the ``fit_workflow`` of a
:class:`~flwr.server.workflow.DefaultWorkflow` driving a legacy ``FedAvg``, and the client side is
:func:`flwr.client.mod.secaggplus_mod` around a legacy ``NumPyClient``
(:func:`fednuclei.federated.client_app.make_client_app` routes the protocol's messages there).

:class:`SecureFedAvg` is that legacy strategy, a shell around the run's
:class:`~fednuclei.federated.strategy.MethodStrategy`: the same participants, per-client
configs, history, validation and checkpoints as every other run; only the average comes from
SecAgg+. Each round costs the protocol's three extra exchanges (keys, shares, unmasking) and
the clients' masking.

Quantisation: a client's weights, multiplied by its training images' share of the run's
``secure_max_images``, are clipped to +-:data:`CLIPPING_RANGE` and mapped onto
:data:`QUANTIZATION_RANGE` integers, so each weight of the mean is exact to about
``CLIPPING_RANGE / QUANTIZATION_RANGE`` (1.2e-7) divided by the clients' mean share: a bound far
above the clients' counts costs precision (clients of 2 images under a bound of 10 000: the
model is 1% off FedAvg's; under a bound of 2, 1e-5). The client refuses weights beyond the
clipping range, the server image counts above ``secure_max_images``: either would corrupt the mean.
The sum of the clients' integers must stay below Flower's modulus (2**32): at most
``2**32 / QUANTIZATION_RANGE`` = 64 clients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from fednuclei.federated.protocol import CONFIG, SECAGG_CLIPPING_RANGE
from fednuclei.federated.strategy import MethodStrategy, RoundFailed
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

# Every client holds a share of every other's keys: hospital federations are small, and this
# tolerates the most dropouts.
NUM_SHARES = 1.0
CLIPPING_RANGE = SECAGG_CLIPPING_RANGE
QUANTIZATION_RANGE = 2**26


def reconstruction_threshold(clients: int) -> int:
    """Key shares needed to unmask: a majority of the clients, so no minority of colluding
    clients can help the server unmask one client."""
    return clients // 2 + 1


def secure_workflow(settings: RunSettings) -> DefaultWorkflow:
    """Flower's rounds with SecAgg+ as their training step, for the run of ``settings``."""
    return DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=NUM_SHARES, reconstruction_threshold=reconstruction_threshold(len(settings.clients)),
        max_weight=settings.secure_max_images, clipping_range=CLIPPING_RANGE, quantization_range=QUANTIZATION_RANGE,
        timeout=settings.round_timeout))


def run_secure_rounds(grid: Grid, strategy: MethodStrategy, num_rounds: int) -> None:
    """``num_rounds`` rounds of ``strategy``'s run averaged with SecAgg+.

    ``grid`` is the ServerApp's own, not a :class:`~fednuclei.federated.pacing.PacedGrid`: all
    four SecAgg+ exchanges are ``train`` messages, and pacing the training by the quick key
    exchange would cut it short. Each exchange waits up to the run's ``round_timeout``.
    """
    settings = strategy.settings
    bare = Context(run_id=grid.run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(bare, config=ServerConfig(num_rounds=num_rounds, round_timeout=settings.round_timeout),
                            strategy=SecureFedAvg(strategy, grid))
    secure_workflow(settings)(grid, context)


class SecureFedAvg(FedAvg):
    """The legacy ``FedAvg`` that :class:`~flwr.server.workflow.SecAggPlusWorkflow` drives,
    deferring everything but the average to ``strategy`` (see the module docstring).

    Flower calls, per round: :meth:`configure_fit`, the SecAgg+ stages, :meth:`aggregate_fit`
    with the securely averaged weights, then :meth:`evaluate` (centralised evaluation, with no
    data on the server), where the clients validate the new model and the round is committed.
    """

    def __init__(self, strategy: MethodStrategy, grid: Grid):
        clients = len(strategy.settings.clients)
        self.keys = list(strategy.model.state_dict())  # the weights' order in Flower's Parameters
        super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_available_clients=clients,
                         initial_parameters=ndarrays_to_parameters([v.cpu().numpy() for v in
                                                                    strategy.model.state_dict().values()]))
        self.strategy, self.grid = strategy, grid
        self.aggregated_round = 0

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        """The round's participants, each with its own config, as MethodStrategy chooses them."""
        # Only the configs are used: the weights travel in the legacy FitIns.
        messages = self.strategy.configure_train(server_round, ArrayRecord(), ConfigRecord(), self.grid)
        proxies = {proxy.node_id: proxy for proxy in client_manager.all().values()}
        return [(proxies[msg.metadata.dst_node_id], FitIns(parameters, dict(msg.content[CONFIG])))
                for msg in messages]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: Sequence[BaseException | tuple[ClientProxy, FitRes]]
                      ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """The SecAgg+ mean (every result carries it), with the round's bookkeeping.

        Raises:
            ValueError: a client trained on more than ``secure_max_images`` images, so its weight
                overflowed the quantisation and the mean is wrong.
        """
        bound = self.strategy.settings.secure_max_images
        oversized = {str(res.metrics.get("name")): res.num_examples for _, res in results if res.num_examples > bound}
        if oversized:
            raise ValueError(f"round {server_round}: clients {oversized} trained on more images than secure_max_images "
                             f"= {bound}, which secure aggregation needs to weigh them; raise it")
        metrics = self.strategy.aggregate_secure_train(server_round, {proxy.node_id: res.metrics
                                                                      for proxy, res in results})
        self.aggregated_round = server_round
        return results[0][1].parameters, dict(metrics)

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        """Validate the round's model on the clients and commit the round (round 0, the initial
        model, is not a round).

        Raises:
            RoundFailed: SecAgg+ stopped before averaging (too few clients completed a stage).
        """
        if server_round == 0:
            return None
        if self.aggregated_round != server_round:
            raise RoundFailed(f"round {self.strategy.rounds_done + server_round}: secure aggregation stopped before "
                              "averaging: too few clients completed one of its stages (the ServerApp log says which)")
        arrays = ArrayRecord({key: Array(value) for key, value in
                              zip(self.keys, parameters_to_ndarrays(parameters), strict=True)})
        messages = self.strategy.configure_evaluate(server_round, arrays, ConfigRecord(), self.grid)
        replies = self.grid.send_and_receive(messages, timeout=self.strategy.settings.round_timeout)
        self.strategy.aggregate_evaluate(server_round, replies)
        self.strategy.end_round(server_round, arrays)
        return None
