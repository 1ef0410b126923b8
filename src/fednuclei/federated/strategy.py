"""FedAvg with durable, resumable rounds, on top of Flower's own ``FedAvg`` and its server loop.

``Strategy.start`` runs the loop; this subclass only

* shifts round numbers by the rounds an earlier, interrupted run already finished (``start``
  counts from 1), so clients, logs and the history see the global round;
* leaves clients that report ``num-examples`` 0 out of the averages (no pixel masks to train
  on, no validation masks): Flower's weighted mean would otherwise divide by zero when no client
  has any;
* keeps each client's reply metrics, which Flower's aggregation folds into one mean;
* stops the run when no client at all answers a stage without error (missing data, a crash):
  Flower would carry on and the round would be committed although nothing was learnt;
* commits the round to a :class:`~fednuclei.federated.checkpoint.RunStore` in
  :meth:`end_round`, passed to ``start`` as ``evaluate_fn``: the hook Flower calls after every
  round with the new global arrays.

FedMix, FedST and FedRGD extend it in :mod:`fednuclei.federated.strategies`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.protocol import WEIGHT_KEY
from fednuclei.model.unet import UNet

logger = logging.getLogger(__name__)


class CheckpointedFedAvg(FedAvg):
    """Size-weighted FedAvg whose rounds are written to ``store`` as they finish.

    Args:
        store: where rounds go; its history says how many rounds are already done.
        model: a model of the run's architecture, used to write the global weights.
        **kwargs: for :class:`flwr.serverapp.strategy.FedAvg` (node counts, keys).
    """

    def __init__(self, store: RunStore, model: UNet, **kwargs: Any):
        super().__init__(weighted_by_key=WEIGHT_KEY, **kwargs)
        self.store = store
        self.model = model
        self.rounds_done = len(store.history())
        self._round: dict[str, Any] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._begin_round()
        return super().configure_train(self.rounds_done + server_round, arrays, config, grid)

    def _begin_round(self) -> None:
        """Start the bookkeeping of a new round (its clock, per-client entries, stage metrics)."""
        self._round = {"started": time.perf_counter(), "clients": {}, "train": None, "evaluate": None}

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.rounds_done
        replies = self._note_clients(server_round, replies, "train")
        arrays, metrics = super().aggregate_train(server_round, replies)
        self._round["train"] = metrics
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return super().configure_evaluate(self.rounds_done + server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        server_round += self.rounds_done
        replies = self._note_clients(server_round, replies, "evaluate")
        metrics = super().aggregate_evaluate(server_round, replies)
        self._round["evaluate"] = metrics
        return metrics

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
            "clients": self._round["clients"],
        }
        self.model.load_state_dict(arrays.to_torch_state_dict())
        self.store.commit_round(self.model, record, self._extra_models())
        logger.info("round %d committed to %s: train loss %s, val Dice %s", record["round"], self.store.folder,
                    record["train_loss"], record["val_dice"])
        return None

    def _extra_models(self) -> dict[str, UNet]:
        """Global models checkpointed next to ``self.model`` (FedMix's second model); none here."""
        return {}

    @staticmethod
    def _check_some_succeeded(server_round: int, replies: list[Message], stage: str) -> None:
        """Stop the run when no client completed ``stage`` (every reply an error, or none at all).

        Raises:
            RuntimeError: no reply without error, quoting the clients' errors.
        """
        if all(msg.has_error() for msg in replies):
            errors = "; ".join(sorted({msg.error.reason[:500] for msg in replies})) or "no reply before the timeout"
            raise RuntimeError(f"round {server_round}: no client completed {stage}: {errors}")

    def _note_clients(self, server_round: int, replies: Iterable[Message], stage: str) -> list[Message]:
        """Record each client's metrics for ``stage``; return the replies that may be averaged
        (errors stay in, so Flower logs them).

        Raises:
            RuntimeError: no reply without error, quoting the clients' errors.
        """
        replies = list(replies)
        self._check_some_succeeded(server_round, replies, stage)
        kept = []
        for msg in replies:
            if msg.has_error():
                kept.append(msg)
                continue
            metrics = msg.content["metrics"]
            name = str(msg.content["client"]["name"])
            examples = int(metrics[WEIGHT_KEY])
            entry = self._round["clients"].setdefault(name, {})
            if stage == "train":
                entry.update(num_examples=examples, train_seconds=float(metrics["train_seconds"]),
                             train_loss=float(metrics["train_loss"]) if examples else None)
            else:
                entry.update(val_examples=examples, val_dice=float(metrics["val_dice"]) if examples else None)
            if examples > 0:
                kept.append(msg)
        return kept
