"""FedMix, FedST and FedRGD as Flower strategies, and the choice of strategy by method.

They extend :class:`~fednuclei.federated.strategy.CheckpointedFedAvg` (durable, resumable rounds,
per-client history, Flower's own ``Strategy.start`` loop) and override Flower's
``configure_train`` / ``aggregate_train`` hooks:

* ``configure_train`` sends the training instruction only to the round's participants
  (:meth:`MixedSupervisionStrategy.participants`): every client for FedMix,
  :func:`~fednuclei.federated.aggregation.fedst_warmup_participants` for FedST (pixel clients
  only in the warm-up rounds), :func:`~fednuclei.federated.aggregation.random_participants` for
  FedRGD (a seeded fraction, drawn from the run's seed and the global round, so a resumed or
  repeated run draws the same clients);
* ``aggregate_train`` turns the replies into
  :class:`~fednuclei.federated.aggregation.ClientReport` s, weighs them
  (:func:`~fednuclei.federated.aggregation.fedmix_weights` or
  :func:`~fednuclei.federated.aggregation.trust_share_weights`) and averages the weights with
  :func:`~fednuclei.federated.aggregation.weighted_average`. When no client trained, the global
  models stay as they were.

Evaluation is Flower's FedAvg one: every node validates the (main) global model.

**Which node plays which client.** The server addresses nodes by id, but participation and
weights are per client. Before the first round (and again whenever the set of connected nodes
changes) :func:`discover_clients` sends every node a Flower ``query`` message with the run
config; the ClientApp answers with the client it plays (from its node config: ``partition-id``
in simulation, ``client=...`` in deployment, see :mod:`fednuclei.federated.client_data`). Node
ids are never assumed to follow the partition order, so the same code serves simulation and
deployment.

**FedMix's two models.** Flower's loop carries one ``ArrayRecord`` from round to round: it is
model 1, *the* global model (validated each round, checkpointed as ``best.pt``/``final.pt``).
The strategy holds model 2 itself, sends both under ``model_1``/``model_2`` and checkpoints
model 2 next to model 1 (``*.model_2.pt``), so a resumed run restores both.

**History.** Each round's ``clients`` entry holds, per client of the run: ``participated``,
``supervision``, ``usable_images``, ``train_loss`` (None unless it trained), ``weight`` (its share
of the aggregate, 0 unless it trained), ``train_seconds``, and the validation numbers. The round's
``train_loss`` is the weight-averaged loss of the clients that trained.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fednuclei.federated.aggregation import (
    ClientReport,
    fedmix_weights,
    fedst_warmup_participants,
    random_participants,
    trust_share_weights,
    weighted_average,
)
from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.protocol import ARRAYS, CLIENT, CONFIG, FEDMIX_MODELS, METRICS, USABLE_KEY
from fednuclei.federated.settings import FederatedSettings
from fednuclei.federated.strategy import CheckpointedFedAvg
from fednuclei.model.unet import UNet

logger = logging.getLogger(__name__)

NODE_POLL_SECONDS = 1.0


def discover_clients(grid: Grid, settings: FederatedSettings, timeout: float) -> dict[int, str]:
    """Which node id plays which client: one ``query`` message to every connected node.

    Waits (up to ``timeout`` seconds) until as many nodes as the run has clients are connected.

    Returns:
        node id -> client name, one entry per client of the run, in the run's client order.

    Raises:
        RuntimeError: too few nodes connected in time, or a node did not answer (with its error).
        ValueError: a node plays a client the run does not name, two nodes play one client, or a
            client has no node.
    """
    expected = len(settings.clients)
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {expected} nodes connected after {timeout} s")
        logger.info("waiting for nodes: %d of %d connected", len(nodes), expected)
        time.sleep(NODE_POLL_SECONDS)
    config = ConfigRecord({**settings.to_run_config(), "server-round": 0})
    messages = [Message(RecordDict({CONFIG: config}), dst_node_id=node, message_type=MessageType.QUERY)
                for node in nodes]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    failed = [f"node {msg.metadata.src_node_id}: {msg.error.reason[:300]}" for msg in replies if msg.has_error()]
    if failed or len(replies) < len(nodes):
        raise RuntimeError(f"{len(nodes) - len(replies) + len(failed)} of {len(nodes)} nodes did not say which "
                           f"client they play: {'; '.join(failed) or 'no reply before the timeout'}")
    played: dict[str, list[int]] = {}
    for msg in replies:
        played.setdefault(str(msg.content[CLIENT]["name"]), []).append(msg.metadata.src_node_id)
    unknown = sorted(set(played) - set(settings.clients))
    twice = sorted(name for name, ids in played.items() if len(ids) > 1)
    missing = [name for name in settings.clients if name not in played]
    if unknown or twice or missing:
        raise ValueError(f"nodes do not match the run's clients {list(settings.clients)}: unknown {unknown}, "
                         f"played by several nodes {twice}, without a node {missing}")
    mapping = {played[name][0]: name for name in settings.clients}
    logger.info("nodes and clients: %s", mapping)
    return mapping


class MixedSupervisionStrategy(CheckpointedFedAvg):
    """Targeted participation, per-method weights, per-client history: the part FedMix, FedST
    and FedRGD share.

    Args:
        store, model: as for :class:`~fednuclei.federated.strategy.CheckpointedFedAvg`.
        settings: the run (clients, their supervision, the method's parameters).
        node_clients: node id -> client name, when known; otherwise (the default) it is learnt
            with :func:`discover_clients` at the first round.
    """

    #: the ArrayRecord keys of the global models sent for training (the first is the main one)
    model_keys: tuple[str, ...] = (ARRAYS,)

    def __init__(self, store: RunStore, model: UNet, settings: FederatedSettings,
                 node_clients: Mapping[int, str] | None = None, **kwargs: Any):
        n_clients = len(settings.clients)
        kwargs = {"min_train_nodes": n_clients, "min_evaluate_nodes": n_clients, "min_available_nodes": n_clients,
                  **kwargs}
        super().__init__(store, model, **kwargs)
        self.settings = settings
        self.node_clients: dict[int, str] = dict(node_clients or {})
        self._sent: dict[str, ArrayRecord] = {}

    # --- what differs between the methods ------------------------------------------------------

    def participants(self, server_round: int) -> list[str]:
        """The clients that train in global round ``server_round`` (>= 1), in run order."""
        return list(self.settings.clients)

    def weights(self, reports: list[ClientReport]) -> dict[str, float]:
        """Aggregation weights of the round's reports (``{}``: nobody trained)."""
        raise NotImplementedError

    def _global_records(self, arrays: ArrayRecord) -> dict[str, ArrayRecord]:
        """The global models to send, by key, given the main one Flower's loop carries."""
        return {ARRAYS: arrays}

    def _keep_globals(self, records: dict[str, ArrayRecord]) -> None:
        """Hold on to the new global models that Flower's loop does not carry (none here)."""

    # --- Flower hooks --------------------------------------------------------------------------

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """Training instructions for this round's participants only."""
        self._begin_round()
        server_round += self.rounds_done
        if set(grid.get_node_ids()) != set(self.node_clients):
            self.node_clients = discover_clients(grid, self.settings, self.settings.round_timeout)
        chosen = set(self.participants(server_round))
        levels = self.settings.client_supervision
        for name in self.settings.clients:
            self._round["clients"][name] = {"participated": name in chosen, "supervision": levels[name],
                                            "usable_images": 0, "train_loss": None, "weight": 0.0}
        self._sent = self._global_records(arrays)
        config["server-round"] = server_round
        record = RecordDict({**self._sent, self.configrecord_key: config})
        nodes = [node for node, name in self.node_clients.items() if name in chosen]
        logger.info("round %d: %s trains (%s)", server_round, type(self).__name__,
                    ", ".join(name for name in self.settings.clients if name in chosen))
        return self._construct_messages(record, nodes, MessageType.TRAIN)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Weigh the clients that trained and average every global model with those weights;
        keep the global models when nobody trained."""
        server_round += self.rounds_done
        replies = list(replies)
        self._check_some_succeeded(server_round, replies, "train")
        reports, arrays_by_model = [], {key: {} for key in self.model_keys}
        for msg in replies:
            if msg.has_error():
                logger.warning("round %d: node %s failed to train: %s", server_round, msg.metadata.src_node_id,
                               msg.error.reason[:500])
                name = self.node_clients.get(msg.metadata.src_node_id)
                if name in self._round["clients"]:
                    self._round["clients"][name]["error"] = msg.error.reason[:500]
                continue
            report = self._report(msg)
            reports.append(report)
            if report.trained:
                for key in self.model_keys:
                    record = msg.content[key]
                    arrays_by_model[key][report.name] = [record[k].numpy() for k in self._sent[key]]
        weights = self.weights(reports)
        for report in reports:
            self._round["clients"][report.name]["weight"] = weights.get(report.name, 0.0)
        if weights:
            new = {key: _to_record(list(self._sent[key]), weighted_average(arrays_by_model[key], weights))
                   for key in self.model_keys}
        else:
            logger.warning("round %d: no client had a usable image; the global model(s) stay as they were",
                           server_round)
            new = dict(self._sent)
        self._keep_globals(new)
        trained = [r for r in reports if r.trained]
        metrics = MetricRecord({"usable_images": sum(r.usable_images for r in trained),
                                "trained_clients": len(trained)})
        if trained:
            metrics["train_loss"] = math.fsum(weights[r.name] * r.loss for r in trained)
        self._round["train"] = metrics
        return new[self.model_keys[0]], metrics

    def _report(self, msg: Message) -> ClientReport:
        """The reply as a ClientReport, noted in the round's per-client entry."""
        name = str(msg.content[CLIENT]["name"])
        entry = self._round["clients"].get(name)
        if entry is None or not entry["participated"]:
            raise ValueError(f"a training reply from client {name!r}, which was not asked to train this round")
        metrics = msg.content[METRICS]
        usable = int(metrics[USABLE_KEY])
        stated = msg.content[CLIENT].get("supervision", entry["supervision"])
        if stated != entry["supervision"]:
            logger.warning("client %s says its supervision is %s, the run says %s; the run's is used", name, stated,
                           entry["supervision"])
        loss = float(metrics["train_loss"]) if usable else math.nan
        entry.update(usable_images=usable, train_loss=loss if usable else None,
                     train_seconds=float(metrics["train_seconds"]))
        return ClientReport(name=name, supervision=entry["supervision"], usable_images=usable, loss=loss)


class FedMixStrategy(MixedSupervisionStrategy):
    """FedMix (Wicaksana et al., IEEE TMI 2023): two global models trained side by side, every
    client each round, adaptive weights ``w ~ d + lam * s`` over the clients that trained.

    Args:
        model_2: the second global model (its initial or restored weights); checkpointed next to
            ``model`` (model 1, the main global model).
        **kwargs: see :class:`MixedSupervisionStrategy`.
    """

    model_keys = FEDMIX_MODELS

    def __init__(self, store: RunStore, model: UNet, settings: FederatedSettings, model_2: UNet, **kwargs: Any):
        super().__init__(store, model, settings, **kwargs)
        self.model_2 = model_2
        self.arrays_2 = ArrayRecord(model_2.state_dict())

    def weights(self, reports: list[ClientReport]) -> dict[str, float]:
        return fedmix_weights(reports, lam=self.settings.lam, beta=self.settings.beta)

    def _global_records(self, arrays: ArrayRecord) -> dict[str, ArrayRecord]:
        return {FEDMIX_MODELS[0]: arrays, FEDMIX_MODELS[1]: self.arrays_2}

    def _keep_globals(self, records: dict[str, ArrayRecord]) -> None:
        self.arrays_2 = records[FEDMIX_MODELS[1]]

    def _extra_models(self) -> dict[str, UNet]:
        self.model_2.load_state_dict(self.arrays_2.to_torch_state_dict())
        return {"model_2": self.model_2}


class FedSTStrategy(MixedSupervisionStrategy):
    """FedST: only pixel clients train in the first ``warmup_rounds`` rounds, everyone after;
    the pixel clients hold ``settings.trust_share`` (default 0.9) of the aggregate."""

    def participants(self, server_round: int) -> list[str]:
        return fedst_warmup_participants(self.settings.client_supervision, server_round, self.settings.warmup_rounds)

    def weights(self, reports: list[ClientReport]) -> dict[str, float]:
        return trust_share_weights(reports, self.settings.trust_share)


class FedRGDStrategy(FedSTStrategy):
    """FedRGD: FedST's local training; each round a seeded random ``participation`` fraction of
    the clients trains, and the pixel clients hold ``settings.trust_share`` (default 0.5) of the
    aggregate."""

    def participants(self, server_round: int) -> list[str]:
        return random_participants(list(self.settings.clients), self.settings.participation, self.settings.seed,
                                   server_round)


def build_strategy(settings: FederatedSettings, store: RunStore, model: UNet,
                   model_2: UNet | None = None) -> CheckpointedFedAvg:
    """The strategy of ``settings.method``, expecting one node per client.

    Args:
        model: the (main) global model, holding the weights the run starts or resumes from.
        model_2: FedMix's second global model (required for FedMix, refused otherwise).
    """
    n_clients = len(settings.clients)
    if settings.method == "fedmix":
        if model_2 is None:
            raise ValueError("FedMix needs its second global model")
        return FedMixStrategy(store, model, settings, model_2)
    if model_2 is not None:
        raise ValueError(f"method {settings.method} has one global model; got a second")
    if settings.method == "fedavg":
        return CheckpointedFedAvg(store, model, min_train_nodes=n_clients, min_evaluate_nodes=n_clients,
                                  min_available_nodes=n_clients)
    strategies = {"fedst": FedSTStrategy, "fedrgd": FedRGDStrategy}
    return strategies[settings.method](store, model, settings)


def _to_record(keys: list[str], arrays: list) -> ArrayRecord:
    """An ArrayRecord with ``keys`` in order, holding the numpy ``arrays``."""
    return ArrayRecord({key: Array(array) for key, array in zip(keys, arrays, strict=True)})
