"""The strategy of every federated method: aggregation of hand-made replies (FedAvg, FedMix,
FedST), and whole server runs against an in-process fake Grid (no Ray): participation, node
discovery, checkpoints, resume."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode

from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.discovery import discover_clients
from fednuclei.federated.server_app import run_server
from fednuclei.federated.strategy import MethodStrategy, RoundFailed
from fednuclei.methods import settings_for as method_settings
from fednuclei.methods.common import build_model
from fednuclei.methods.fedrgd import random_participants
from fednuclei.model.files import load_model

CLIENTS = ("a", "b", "c")
SUPERVISION = ("pixel", "bbox", "points")


def settings_for(tmp_path, method="fedmix", clients=CLIENTS, supervision=SUPERVISION, **changes):
    values = {"num_server_rounds": 2, "width": 4, "depth": 2, "groups": 2, "seed": 0,
              "checkpoint_dir": str(tmp_path / "checkpoints"), **changes}
    return method_settings({"clients": clients, "supervision": supervision, "method": method, **values})


def arrays(value: float) -> dict[str, np.ndarray]:
    return {"w": np.full((2, 3), value, np.float32), "b": np.full(4, value, np.float32)}


def record(values: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in values.items()})


def train_reply(sent: Message, name: str, usable: int, loss: float, **models: dict[str, np.ndarray]) -> Message:
    content = RecordDict({
        "metrics": MetricRecord({"train_loss": loss, "train_seconds": 1.0, "usable_images": usable}),
        "client": ConfigRecord({"name": name}),
    })
    for key, values in models.items():
        content[key] = record(values)
    return Message(content, reply_to=sent)


class NodeList:
    """Just enough of a Grid for configure_train when the node map is known."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return self.nodes


def strategy_for(settings, node_clients, **extras):
    return MethodStrategy(RunStore(settings), settings, build_model(settings), extras, node_clients=node_clients)


# --- FedAvg -----------------------------------------------------------------------------------

@pytest.fixture
def fedavg(tmp_path, task_identity):
    settings = settings_for(tmp_path, method="fedavg", supervision=())
    return strategy_for(settings, {1: "a", 2: "b", 3: "c"})


def sent_by_client(strategy, values=0.0, server_round=1):
    grid = NodeList(strategy.node_clients)
    sent = strategy.configure_train(server_round, record(arrays(values)), ConfigRecord(), grid)
    return {strategy.node_clients[m.metadata.dst_node_id]: m for m in sent}


def test_fedavg_is_the_size_weighted_mean_of_client_weights(fedavg):
    rng = np.random.default_rng(0)
    clients = {name: ({"w": rng.normal(size=(2, 3)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)},
                      n) for name, n in (("a", 10), ("b", 30), ("c", 60))}
    sent = sent_by_client(fedavg)
    replies = [train_reply(sent[name], name, n, float(n), arrays=w) for name, (w, n) in clients.items()]
    new, metrics = fedavg.aggregate_train(1, replies)
    for key in ("w", "b"):
        expected = sum(w[key] * n for w, n in clients.values()) / 100
        np.testing.assert_allclose(new[key].numpy(), expected, rtol=1e-6)
    assert metrics["train_loss"] == pytest.approx((10 * 10 + 30 * 30 + 60 * 60) / 100)
    assert fedavg._round["clients"]["b"] == {"participated": True, "supervision": "pixel", "usable_images": 30,
                                             "train_loss": 30.0, "weight": pytest.approx(0.3), "train_seconds": 1.0}


def test_clients_without_examples_do_not_count(fedavg):
    sent = sent_by_client(fedavg)
    replies = [train_reply(sent["a"], "a", 4, 0.5, arrays=arrays(1.0)),
               train_reply(sent["b"], "b", 0, 0.0, arrays=arrays(9.0)), train_reply(sent["c"], "c", 0, 0.0)]
    new, _ = fedavg.aggregate_train(1, replies)
    np.testing.assert_array_equal(new["w"].numpy(), arrays(1.0)["w"])
    assert fedavg._round["clients"]["b"]["train_loss"] is None
    # No client with validation masks: no average at all, rather than a division by zero.
    asked = fedavg.configure_evaluate(1, record(arrays(1.0)), ConfigRecord(), NodeList(fedavg.node_clients))
    evaluations = [Message(RecordDict({"metrics": MetricRecord({"val_dice": 0.0, "num-examples": 0}),
                                       "client": ConfigRecord({"name": fedavg.node_clients[m.metadata.dst_node_id]})}),
                           reply_to=m) for m in asked]
    assert fedavg.aggregate_evaluate(1, evaluations) is None


def raised(sent: Message, reason: str, code: int = ErrorCode.CLIENT_APP_RAISED_EXCEPTION) -> Message:
    return Message(Error(code=code, reason=reason), reply_to=sent)


def test_a_round_below_the_quorum_stops_the_run_naming_the_failed_clients_and_their_errors(fedavg):
    sent = sent_by_client(fedavg)
    replies = [raised(sent["a"], "ImageReadError"), train_reply(sent["b"], "b", 4, 0.5, arrays=arrays(1.0))]
    with pytest.raises(RoundFailed, match=r"round 1: 2 of 3 clients failed to train: a \(ImageReadError\), "
                                          r"c \(no reply in time\); at least 3 must succeed"):
        fedavg.aggregate_train(1, replies)


def test_failures_within_the_quorum_are_recorded_by_kind_without_their_text(tmp_path, task_identity):
    settings = settings_for(tmp_path, method="fedavg", supervision=(), quorum=0.6)
    strategy = strategy_for(settings, {1: "a", 2: "b", 3: "c"})
    sent = sent_by_client(strategy)
    # a client app without the project's mod sends its exception's text: only Flower's code name is kept
    replies = [raised(sent["a"], "FileNotFoundError: no tile set at /x/alpha", code=ErrorCode.UNKNOWN),
               train_reply(sent["b"], "b", 4, 0.5, arrays=arrays(1.0)), train_reply(sent["c"], "c", 4, 0.5,
                                                                                    arrays=arrays(3.0))]
    new, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(new["w"].numpy(), arrays(2.0)["w"])
    assert strategy._round["failures"] == {"train": {"a": "unknown"}, "evaluate": {}}
    assert strategy._round["clients"]["a"]["error"] == "unknown" and "/x/alpha" not in str(strategy._round)
    with pytest.raises(RoundFailed, match=r"2 of 3 clients failed to evaluate: a \(no reply in time\), "
                                          r"b \(no reply in time\); at least 2"):
        asked = strategy.configure_evaluate(1, record(arrays(1.0)), ConfigRecord(), NodeList(strategy.node_clients))
        strategy.aggregate_evaluate(1, [Message(RecordDict({
            "metrics": MetricRecord({"val_dice": 0.5, "num-examples": 1}), "client": ConfigRecord({"name": "c"})}),
            reply_to=next(m for m in asked if m.metadata.dst_node_id == 3))])


def test_round_numbers_continue_after_finished_rounds(fedavg):
    fedavg.rounds_done = 2
    assert {m.content["config"]["server-round"] for m in sent_by_client(fedavg).values()} == {3}


# --- FedMix, FedST ----------------------------------------------------------------------------

@pytest.fixture
def fedmix(tmp_path, task_identity):
    settings = settings_for(tmp_path)
    strategy = strategy_for(settings, {11: "a", 12: "b", 13: "c"}, model_2=build_model(settings, which=2))
    strategy.extra_arrays["model_2"] = record(arrays(100.0))
    return strategy


def test_fedmix_aggregates_both_models_with_the_adaptive_weights(fedmix):
    sent = list(fedmix.configure_train(1, record(arrays(0.0)), ConfigRecord(), NodeList([11, 12, 13])))
    assert {m.metadata.dst_node_id for m in sent} == {11, 12, 13}
    assert set(sent[0].content.array_records) == {"arrays", "model_2"}
    by_node = {m.metadata.dst_node_id: m for m in sent}
    replies = [
        train_reply(by_node[11], "a", 10, 0.5, arrays=arrays(1.0), model_2=arrays(10.0)),
        train_reply(by_node[12], "b", 5, 1.0, arrays=arrays(2.0), model_2=arrays(20.0)),
        train_reply(by_node[13], "c", 0, 0.0),  # points client, nothing selected: no weights sent
    ]
    main, metrics = fedmix.aggregate_train(1, replies)
    # d = (2/3, 1/3), s = (1/9, 8/9) -> w = (16/99, 83/99, 0).
    w_a, w_b = 16 / 99, 83 / 99
    np.testing.assert_allclose(main["w"].numpy(), w_a * 1.0 + w_b * 2.0, rtol=1e-6)
    np.testing.assert_allclose(fedmix.extra_arrays["model_2"]["b"].numpy(), w_a * 10.0 + w_b * 20.0, rtol=1e-6)
    clients = fedmix._round["clients"]
    assert clients["a"]["weight"] == pytest.approx(w_a) and clients["b"]["weight"] == pytest.approx(w_b)
    assert clients["c"] == {"participated": True, "supervision": "points", "usable_images": 0, "train_loss": None,
                            "weight": 0.0, "train_seconds": 1.0}
    assert clients["b"]["usable_images"] == 5 and clients["b"]["train_loss"] == 1.0
    assert metrics["usable_images"] == 15 and metrics["trained_clients"] == 2
    assert metrics["train_loss"] == pytest.approx(w_a * 0.5 + w_b * 1.0)


def test_fedmix_keeps_both_models_when_nobody_trained(fedmix):
    sent = list(fedmix.configure_train(1, record(arrays(3.0)), ConfigRecord(), NodeList([11, 12, 13])))
    replies = [train_reply(m, {11: "a", 12: "b", 13: "c"}[m.metadata.dst_node_id], 0, 0.0) for m in sent]
    main, metrics = fedmix.aggregate_train(1, replies)
    np.testing.assert_array_equal(main["w"].numpy(), arrays(3.0)["w"])
    np.testing.assert_array_equal(fedmix.extra_arrays["model_2"]["w"].numpy(), arrays(100.0)["w"])
    assert "train_loss" not in metrics and metrics["trained_clients"] == 0
    assert all(entry["weight"] == 0.0 for entry in fedmix._round["clients"].values())


def test_fedst_sends_training_to_pixel_clients_only_during_warmup(tmp_path, task_identity):
    settings = settings_for(tmp_path, method="fedst", warmup_rounds=1)
    strategy = strategy_for(settings, {5: "a", 6: "b", 7: "c"})
    grid = NodeList([5, 6, 7])
    assert [m.metadata.dst_node_id for m in strategy.configure_train(1, record(arrays(0)), ConfigRecord(), grid)] == [5]
    assert strategy._round["clients"]["b"]["participated"] is False
    assert sorted(m.metadata.dst_node_id for m in strategy.configure_train(2, record(arrays(0)), ConfigRecord(),
                                                                           grid)) == [5, 6, 7]


def test_the_strategy_keeps_the_extra_models_the_method_declares(tmp_path):
    fedmix = settings_for(tmp_path)
    with pytest.raises(ValueError, match=r"keeps extra models \['model_2'\]"):
        MethodStrategy(RunStore(fedmix), fedmix, build_model(fedmix))
    fedrgd = settings_for(tmp_path, method="fedrgd")
    assert strategy_for(fedrgd, {}).model_keys == ("arrays",)


# --- whole server runs on a fake Grid ---------------------------------------------------------

class FakeGrid:
    """Nodes with arbitrary ids playing named clients, answering in-process.

    A training client that trains (``usable`` > 0) returns each received model plus ``step``
    (main model: +1, FedMix's model 2: +2), so a run's weights count the rounds.
    """

    def __init__(self, node_clients: dict[int, str], supervision: dict[str, str], usable: dict[str, int]):
        self.node_clients, self.supervision, self.usable = node_clients, supervision, usable
        self.trained: dict[int, list[str]] = defaultdict(list)
        self.queries = 0

    def get_node_ids(self):
        return list(self.node_clients)

    def send_and_receive(self, messages, *, timeout=None):
        return [self._answer(msg) for msg in messages]

    def _answer(self, msg: Message) -> Message:
        name = self.node_clients[msg.metadata.dst_node_id]
        client = ConfigRecord({"name": name, "supervision": self.supervision[name]})
        kind = msg.metadata.message_type
        if kind == MessageType.QUERY:
            self.queries += 1
            return Message(RecordDict({"client": client}), reply_to=msg)
        if kind == MessageType.EVALUATE:
            metrics = MetricRecord({"val_dice": 0.5, "num-examples": 1})
            return Message(RecordDict({"metrics": metrics, "client": client}), reply_to=msg)
        self.trained[int(msg.content["config"]["server-round"])].append(name)
        usable = self.usable[name]
        content = RecordDict({"metrics": MetricRecord({"train_loss": 0.5, "train_seconds": 0.1, "usable_images": usable}), "client": client})
        if usable:
            for key, step in (("arrays", 1.0), ("model_2", 2.0)):
                if key in msg.content.array_records:
                    content[key] = record({k: v.numpy() + step for k, v in msg.content[key].items()})
        return Message(content, reply_to=msg)


def first_weight(path) -> float:
    model, _ = load_model(path)
    return float(next(model.parameters()).detach().flatten()[0])


def initial_first_weight(settings, which=1) -> float:
    return float(next(build_model(settings, which).parameters()).detach().flatten()[0])


def fake_grid(settings, node_ids, usable):
    return FakeGrid(dict(zip(node_ids, reversed(settings.clients))), settings.client_supervision, usable)


def test_fedrgd_participation_is_seeded_and_the_same_in_two_server_runs(tmp_path, task_identity):
    clients = tuple(f"h{i}" for i in range(6))
    draws = []
    for run, node_ids in enumerate(([101, 102, 103, 104, 105, 106], [9, 4, 77, 3, 50, 8])):
        settings = settings_for(tmp_path / f"run{run}", method="fedrgd", clients=clients,
                                supervision=("pixel", "pixel", "bbox", "points", "none", "none"), num_server_rounds=4,
                                participation=0.5, seed=3)
        grid = fake_grid(settings, node_ids, {name: 2 for name in clients})
        store = run_server(grid, settings)
        draws.append({r: sorted(names, key=clients.index) for r, names in grid.trained.items()})
        history = store.history()
        for entry in history:
            chosen = [name for name, c in entry["clients"].items() if c["participated"]]
            assert chosen == draws[-1][entry["round"]]
            assert sum(c["weight"] for c in entry["clients"].values()) == pytest.approx(1.0)
            assert all(c["weight"] == 0.0 for c in entry["clients"].values() if not c["participated"])
        assert grid.queries == len(clients)  # one discovery, before the first round
    assert draws[0] == draws[1] == {r: random_participants(list(clients), 0.5, 3, r) for r in range(1, 5)}
    assert len({tuple(names) for names in draws[0].values()}) > 1  # not the same clients every round


def test_fedmix_server_run_checkpoints_both_models_and_resumes_them(tmp_path, task_identity):
    settings = settings_for(tmp_path, num_server_rounds=2)
    usable = {"a": 4, "b": 0, "c": 0}  # only the pixel client trains: the globals are its models
    store = run_server(fake_grid(settings, [31, 32, 33], usable), settings)
    start_1, start_2 = initial_first_weight(settings), initial_first_weight(settings, which=2)
    assert first_weight(store.final_path) == pytest.approx(start_1 + 2)
    assert first_weight(store.extra_path("final", "model_2")) == pytest.approx(start_2 + 4)
    history = store.history()
    assert [h["round"] for h in history] == [1, 2]
    assert history[0]["clients"]["a"]["weight"] == 1.0 and history[0]["clients"]["b"]["weight"] == 0.0
    assert history[0]["clients"]["b"] == {
        "participated": True, "supervision": "bbox", "usable_images": 0, "train_loss": None, "weight": 0.0,
        "train_seconds": 0.1, "val_examples": 1, "val_dice": 0.5}
    _, config = load_model(store.extra_path("best", "model_2"))
    assert config["method"] == "fedmix" and config["model"] == "model_2"

    resumed = run_server(fake_grid(settings, [7, 8, 9], usable), replace(settings, num_server_rounds=3))
    assert resumed.folder == store.folder and [h["round"] for h in resumed.history()] == [1, 2, 3]
    assert first_weight(store.final_path) == pytest.approx(start_1 + 3)
    assert first_weight(store.extra_path("final", "model_2")) == pytest.approx(start_2 + 6)  # model 2 was restored


def test_discovery_refuses_nodes_that_do_not_match_the_clients(tmp_path, task_identity):
    settings = settings_for(tmp_path)
    grid = FakeGrid({1: "a", 2: "b", 3: "zeta"}, {"a": "pixel", "b": "bbox", "zeta": "none"}, {})
    with pytest.raises(ValueError, match=r"unknown \['zeta'\].*without a node \['c'\]"):
        discover_clients(grid, settings, timeout=5)
    grid = FakeGrid({1: "a", 2: "b", 3: "c"}, dict(zip(CLIENTS, SUPERVISION)), {})
    assert discover_clients(grid, settings, timeout=5) == {1: "a", 2: "b", 3: "c"}


def test_model_two_starts_from_another_initialisation(tmp_path):
    settings = settings_for(tmp_path)
    one, two = build_model(settings), build_model(settings, which=2)
    assert not all(torch.equal(p, q) for p, q in zip(one.parameters(), two.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(two.parameters(), build_model(settings, which=2).parameters()))
