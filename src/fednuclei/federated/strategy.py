"""The Flower strategy of every federated method: Flower's ``FedAvg`` loop, driven by the method table.

``Strategy.start`` runs the rounds. This subclass reads the run's
:class:`~fednuclei.methods.Method` and overrides Flower's training hooks:

* ``configure_train`` sends the round's global models (the main one Flower's loop carries, under
  ``arrays``, and the method's extra models under their names) to the round's participants only
  (``Method.participants``: every client for FedAvg and FedMix, pixel clients during FedST's
  warm-up, a seeded fraction for FedRGD; a client whose join round has not come yet never);
  with a FedProx strength, the models the run started from travel too, as the clients'
  proximal reference;
* ``aggregate_train`` turns the replies into
  :class:`~fednuclei.methods.aggregation.ClientReport` s, weighs them with
  ``Method.round_weights`` and averages every global model with those weights
  (:func:`~fednuclei.methods.aggregation.weighted_average`). When no client trained, the global
  models stay as they were.

* ``configure_evaluate`` asks every node to validate the main global model.

Each message carries only its client's :func:`~fednuclei.federated.run_config.client_config`.
A client that fails or does not reply in time is a failure of the round, named with its error's
kind; a round in which fewer than ``quorum`` of the clients asked succeed stops the run
(:class:`RoundFailed`). Round numbers are
shifted by the rounds an earlier, interrupted run already finished (``start`` counts from 1), so
clients, logs and the history see the global round; each finished round is committed to a
:class:`~fednuclei.federated.checkpoint.RunStore` in :meth:`MethodStrategy.end_round`, the hook
Flower calls after every round with the new global arrays (``evaluate_fn`` of ``start``).

**History.** Each round's ``clients`` entry holds, per client of the run: ``participated``,
``supervision``, ``usable_images``, ``train_loss`` (None unless it trained), ``weight`` (its
share of the aggregate, 0 unless it trained), ``train_seconds``, ``val_examples`` / ``val_dice``,
and ``error`` (the kind of its failure, when it failed). The round's ``train_loss`` is the
weight-averaged loss of the clients that trained; ``failures`` maps each stage (``train``,
``evaluate``) to its failed clients and their errors' kinds; ``val_clients`` lists the clients whose validation Dice is in ``val_dice``;
``dp_epsilon`` is the privacy spent so far under central DP (:mod:`fednuclei.federated.privacy`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.discovery import discover_clients
from fednuclei.federated.privacy import epsilon_spent
from fednuclei.federated.progress import RoundProgress
from fednuclei.federated.protocol import ARRAYS, CLIENT, CONFIG, METRICS, USABLE_KEY, WEIGHT_KEY, reference_key
from fednuclei.federated.run_config import client_config
from fednuclei.methods import method_of
from fednuclei.methods.aggregation import ClientReport, uniform_weights, weighted_average
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

NO_REPLY = "no reply in time"
SECURE_DROPOUT = "dropped out of secure aggregation"


class RoundFailed(RuntimeError):
    """Fewer clients than the run's quorum completed a round's training or validation."""


class MethodStrategy(FedAvg):
    """Flower's FedAvg with the participants, weights and global models of ``settings.method``,
    and rounds written to ``store`` as they finish.

    Args:
        store: where rounds go; its history says how many rounds are already done.
        settings: the run (clients, their supervision, the method and its parameters).
        model: the main global model, holding the weights the run starts or resumes from.
        extras: the method's extra global models by name (FedMix: ``model_2``), likewise.
        node_clients: node id -> client name, when known; otherwise (the default) it is learnt
            with :func:`~fednuclei.federated.discovery.discover_clients` at the first round.
        starting_models: the models the run started from, main one first (FedProx references,
            sent every round; none: no proximal term).
        progress: reports each committed round (none: a debug line only).
    """

    def __init__(self, store: RunStore, settings: RunSettings, model: UNet, extras: Mapping[str, UNet] | None = None,
                 node_clients: Mapping[int, str] | None = None, starting_models: Sequence[UNet] | None = None,
                 progress: RoundProgress | None = None):
        n_clients = len(settings.clients)
        super().__init__(weighted_by_key=WEIGHT_KEY, min_train_nodes=n_clients, min_evaluate_nodes=n_clients,
                         min_available_nodes=n_clients)
        self.method = method_of(settings.method)
        extras = dict(extras or {})
        if tuple(extras) != self.method.extra_models:
            raise ValueError(f"method {self.method.name} keeps extra models {list(self.method.extra_models)}, "
                             f"got {list(extras)}")
        self.store, self.settings, self.model, self.extras = store, settings, model, extras
        self.extra_arrays = {name: ArrayRecord(extra.state_dict()) for name, extra in extras.items()}
        self.proximal_references = {reference_key(key): ArrayRecord(m.state_dict())
                                    for key, m in zip(self.model_keys, starting_models or ())}
        self.node_clients: dict[int, str] = dict(node_clients or {})
        self.rounds_done = store.last_round
        self.progress = progress
        self._round: dict[str, Any] = {}
        self._sent: dict[str, ArrayRecord] = {}
        self._asked: dict[int, str] = {}

    @property
    def model_keys(self) -> tuple[str, ...]:
        """The ArrayRecord keys of the global models, the main one first."""
        return (ARRAYS, *self.method.extra_models)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """Training instructions for this round's participants only."""
        self._round = {"started": time.perf_counter(), "clients": {}, "train": None, "evaluate": None,
                       "failures": {"train": {}, "evaluate": {}}, "val_clients": []}
        server_round += self.rounds_done
        if set(grid.get_node_ids()) != set(self.node_clients):
            self.node_clients = discover_clients(grid, self.settings, self.settings.round_timeout)
        joined = self.settings.client_join_rounds
        chosen = {name for name in self.method.participants(self.settings, server_round) if joined[name] <= server_round}
        levels = self.settings.client_supervision
        for name in self.settings.clients:
            self._round["clients"][name] = {"participated": name in chosen, "supervision": levels[name],
                                            "usable_images": 0, "train_loss": None, "weight": 0.0}
        self._sent = {ARRAYS: arrays, **self.extra_arrays}
        self._asked = {node: name for node, name in self.node_clients.items() if name in chosen}
        logger.debug("round %d: %s trains (%s)", server_round, self.method.name,
                     ", ".join(name for name in self.settings.clients if name in chosen))
        return self._messages(server_round, MessageType.TRAIN, {**self._sent, **self.proximal_references})

    def _messages(self, server_round: int, message_type: str, arrays: Mapping[str, ArrayRecord]) -> list[Message]:
        """One message per node asked this round, carrying ``arrays`` and its client's config only."""
        return [Message(RecordDict({**arrays, CONFIG: ConfigRecord(client_config(self.settings, server_round, name))}),
                        dst_node_id=node, message_type=message_type)
                for node, name in self._asked.items()]

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Weigh the clients that trained and average every global model with those weights;
        keep the global models when nobody trained."""
        server_round += self.rounds_done
        replies = self._succeeded(server_round, "train", list(replies))
        reports = [self._report(msg.content[CLIENT], msg.content[METRICS]) for msg in replies]
        arrays_by_model = {key: {report.name: [msg.content[key][k].numpy() for k in self._sent[key]]
                                 for msg, report in zip(replies, reports) if report.trained}
                           for key in self.model_keys}
        weights = self._weigh(reports)
        if weights:
            new = {key: _to_record(list(self._sent[key]), weighted_average(arrays_by_model[key], weights))
                   for key in self.model_keys}
        else:
            logger.warning("round %d: no client had a usable image; the global model(s) stay as they were",
                           server_round)
            new = dict(self._sent)
        self.extra_arrays = {name: new[name] for name in self.method.extra_models}
        return new[ARRAYS], self._train_metrics(reports, weights)

    def aggregate_secure_train(self, server_round: int, replies: Mapping[int, Mapping[str, Any]]) -> MetricRecord:
        """:meth:`aggregate_train`'s bookkeeping for a round whose average SecAgg+ formed (with
        FedAvg's weights, the only ones it supports): ``replies`` maps each node whose masked
        model entered the sum to its reply's metrics, which also name the client and its
        supervision. The clients asked that are not there dropped out of the protocol."""
        server_round += self.rounds_done
        self._record_failures(server_round, "train", {name: SECURE_DROPOUT for node, name in self._asked.items()
                                                      if node not in replies})
        reports = [self._report(reply, reply) for reply in replies.values()]
        return self._train_metrics(reports, self._weigh(reports))

    def _weigh(self, reports: Sequence[ClientReport]) -> dict[str, float]:
        """The clients' weights in the round's average, noted in their entries."""
        # Central DP's noise is calibrated to an average with equal weights.
        private = self.settings.dp_noise_multiplier > 0
        weights = uniform_weights(reports) if private else self.method.round_weights(reports, self.settings)
        for report in reports:
            self._round["clients"][report.name]["weight"] = weights.get(report.name, 0.0)
        return weights

    def _train_metrics(self, reports: Sequence[ClientReport], weights: Mapping[str, float]) -> MetricRecord:
        """The round's training metrics, kept for its history entry."""
        trained = [r for r in reports if r.trained]
        metrics = MetricRecord({"usable_images": sum(r.usable_images for r in trained),
                                "trained_clients": len(trained)})
        if trained:
            metrics["train_loss"] = math.fsum(weights[r.name] * r.loss for r in trained)
        self._round["train"] = metrics
        return metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """Every node validates the main global model."""
        self._asked = dict(self.node_clients)
        return self._messages(self.rounds_done + server_round, MessageType.EVALUATE, {ARRAYS: arrays})

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Flower's mean validation Dice weighted by validation tiles, over the clients that have
        some (a mean over nobody would divide by zero); each client's numbers go to the history."""
        server_round += self.rounds_done
        kept = []
        for msg in self._succeeded(server_round, "evaluate", list(replies)):
            metrics = msg.content[METRICS]
            examples = int(metrics[WEIGHT_KEY])
            name = str(msg.content[CLIENT]["name"])
            self._round["clients"].setdefault(name, {}).update(
                val_examples=examples, val_dice=float(metrics["val_dice"]) if examples else None)
            if examples > 0:
                kept.append(msg)
                self._round["val_clients"].append(name)
        metrics = super().aggregate_evaluate(server_round, kept)
        self._round["evaluate"] = metrics
        return metrics

    def _succeeded(self, server_round: int, stage: str, replies: list[Message]) -> list[Message]:
        """The replies without error; the failures (errors, and the clients asked that did not
        reply) are logged and recorded with their kind.

        Raises:
            RoundFailed: fewer than ``quorum`` of the clients asked succeeded, naming the failed ones.
        """
        failed = {self._asked.get(msg.metadata.src_node_id, f"node {msg.metadata.src_node_id}"): error_kind(msg.error)
                  for msg in replies if msg.has_error()}
        replied = {msg.metadata.src_node_id for msg in replies}
        failed.update({name: NO_REPLY for node, name in self._asked.items() if node not in replied})
        self._record_failures(server_round, stage, failed)
        return [msg for msg in replies if not msg.has_error()]

    def _record_failures(self, server_round: int, stage: str, failed: Mapping[str, str]) -> None:
        """Log and record the clients that failed ``stage`` (name -> kind of failure).

        Raises:
            RoundFailed: fewer than ``quorum`` of the clients asked succeeded, naming the failed ones.
        """
        for name, kind in failed.items():
            self._round["clients"].setdefault(name, {})["error"] = kind
            self._round["failures"][stage][name] = kind
        needed = math.ceil(self.settings.quorum * len(self._asked) - 1e-9)
        listing = ", ".join(f"{name} ({kind})" for name, kind in sorted(failed.items()))
        if len(self._asked) - len(failed) < needed:
            raise RoundFailed(f"round {server_round}: {len(failed)} of {len(self._asked)} clients failed to {stage}: "
                              f"{listing}; at least {needed} must succeed (quorum {self.settings.quorum:g}). "
                              "The clients' own logs hold the details.")
        if failed:
            logger.warning("round %d: %d of %d clients failed to %s: %s; the round goes on with the others",
                           server_round, len(failed), len(self._asked), stage, listing)

    def end_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """``evaluate_fn`` of ``start``: commit the finished round (round 0, the initial model,
        is not a round)."""
        if server_round == 0:
            return None
        train, evaluate = self._round["train"] or {}, self._round["evaluate"] or {}
        record = {
            "round": self.rounds_done + server_round,
            "train_loss": train.get("train_loss"),
            "val_dice": evaluate.get("val_dice"),
            "round_seconds": time.perf_counter() - self._round["started"],
            "failures": self._round["failures"],
            "val_clients": sorted(self._round["val_clients"]),
            "dp_epsilon": epsilon_spent(self.settings, self.rounds_done + server_round),
            "clients": self._round["clients"],
        }
        self.model.load_state_dict(arrays.to_torch_state_dict())
        for name, extra in self.extras.items():
            extra.load_state_dict(self.extra_arrays[name].to_torch_state_dict())
        self.store.commit_round(self.model, record, self.extras)
        logger.debug("round %d committed to %s", record["round"], self.store.folder)
        if self.progress is not None:
            self.progress.round_done(record)
        return None

    def _report(self, client: Mapping[str, Any], metrics: Mapping[str, Any]) -> ClientReport:
        """A training reply (its ``client`` record and its ``metrics``) as a ClientReport, noted
        in the round's per-client entry."""
        name = str(client["name"])
        entry = self._round["clients"].get(name)
        if entry is None or not entry["participated"]:
            raise ValueError(f"a training reply from client {name!r}, which was not asked to train this round")
        usable = int(metrics[USABLE_KEY])
        stated = client.get("supervision", entry["supervision"])
        if stated != entry["supervision"]:
            logger.warning("client %s says its supervision is %s, the run says %s; the run's is used", name, stated,
                           entry["supervision"])
        loss = float(metrics["train_loss"]) if usable else math.nan
        entry.update(usable_images=usable, train_loss=loss if usable else None,
                     train_seconds=float(metrics["train_seconds"]))
        return ClientReport(name=name, supervision=entry["supervision"], usable_images=usable, loss=loss)


def error_kind(error: Error) -> str:
    """What went wrong, in words that cannot carry a client's data: the exception's class name
    that the ClientApp reports, or the name of Flower's error code."""
    reason = (error.reason or "").split(" ", 1)[0]
    if error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION and reason.isidentifier():
        return reason
    codes = {value: name.lower().replace("_", " ") for name, value in vars(ErrorCode).items() if name.isupper()}
    return codes.get(error.code, f"error code {error.code}")


def _to_record(keys: list[str], arrays: list) -> ArrayRecord:
    """An ArrayRecord with ``keys`` in order, holding the numpy ``arrays``."""
    return ArrayRecord({key: Array(array) for key, array in zip(keys, arrays, strict=True)})
