"""FedAvg aggregation on hand-made replies, and the bookkeeping of the checkpointing subclass."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.strategy import CheckpointedFedAvg
from fednuclei.federated.task import build_model


def reply(name: str, weights: dict[str, np.ndarray] | None, **metrics) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics), "client": ConfigRecord({"name": name})})
    if weights is not None:
        content["arrays"] = ArrayRecord({k: Array(v) for k, v in weights.items()})
    return Message(content=content, dst_node_id=1, message_type=MessageType.TRAIN)


@pytest.fixture
def strategy(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root)
    return CheckpointedFedAvg(RunStore(settings), build_model(settings))


def test_fedavg_is_the_size_weighted_mean_of_client_weights(strategy):
    rng = np.random.default_rng(0)
    clients = {name: ({"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}, n)
               for name, n in (("a", 10), ("b", 30), ("c", 60))}
    replies = [reply(name, w, train_loss=float(n), train_seconds=1.0, **{"num-examples": n})
               for name, (w, n) in clients.items()]
    strategy.configure_train(1, ArrayRecord(), ConfigRecord(), grid=_Grid(3))
    arrays, metrics = strategy.aggregate_train(1, replies)
    for key in ("w", "b"):
        expected = sum(w[key] * n for w, n in clients.values()) / 100
        np.testing.assert_allclose(arrays[key].numpy(), expected, rtol=1e-6)
    assert metrics["train_loss"] == pytest.approx((10 * 10 + 30 * 30 + 60 * 60) / 100)
    assert strategy._round["clients"]["b"] == {"num_examples": 30, "train_seconds": 1.0, "train_loss": 30.0}


def test_clients_without_examples_do_not_count(strategy):
    weights = {"w": np.ones(2, np.float32)}
    replies = [reply("a", weights, train_loss=0.5, train_seconds=1.0, **{"num-examples": 4}),
               reply("weak", {"w": np.full(2, 9.0, np.float32)}, train_loss=0.0, train_seconds=0.0,
                     **{"num-examples": 0})]
    strategy.configure_train(1, ArrayRecord(), ConfigRecord(), grid=_Grid(2))
    arrays, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_array_equal(arrays["w"].numpy(), weights["w"])
    assert strategy._round["clients"]["weak"]["train_loss"] is None
    # No client with validation masks: no average at all, rather than a division by zero.
    assert strategy.aggregate_evaluate(1, [reply("weak", None, val_dice=0.0, **{"num-examples": 0})]) is None


def test_a_round_where_every_client_failed_stops_the_run(strategy):
    sent = Message(content=RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN)
    failed = Message(Error(code=0, reason="FileNotFoundError: no tile set at /x/alpha"), reply_to=sent)
    strategy.configure_train(1, ArrayRecord(), ConfigRecord(), grid=_Grid(2))
    with pytest.raises(RuntimeError, match="round 1: no client completed train: .*no tile set"):
        strategy.aggregate_train(1, [failed])
    with pytest.raises(RuntimeError, match="no reply before the timeout"):
        strategy.aggregate_evaluate(1, [])


def test_round_numbers_continue_after_finished_rounds(strategy):
    strategy.rounds_done = 2
    messages = list(strategy.configure_train(1, ArrayRecord(), ConfigRecord(), grid=_Grid(2)))
    assert {m.content["config"]["server-round"] for m in messages} == {3}


class _Grid:
    """Just enough of a Grid for node sampling."""

    def __init__(self, n: int):
        self.n = n

    def get_node_ids(self):
        return list(range(1, self.n + 1))
