"""What travels between the server and the hospitals: every message of whole FedAvg and FedMix
rounds, with the real ServerApp and ClientApp in one process, against an allow-list."""

from __future__ import annotations

import math

import pytest
from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.run_config import CLIENT_FIELDS
from fednuclei.federated.server_app import run_server
from fednuclei.methods import METHODS
from tests.federated.in_process import InProcessGrid
from tests.sample_data import mixed_settings, write_client_data, write_mixed_client_data

# Strings a message may hold; anything else is a number or a flag.
STRING_KEYS = {"method", "client", "supervision", "name"}
CONFIG_KEYS = {*CLIENT_FIELDS, "client", "supervision", "server-round"}
METRIC_KEYS = {"train_loss", "train_seconds", "usable_images", "val_dice", "num-examples"}
MODEL_KEYS = {"arrays", "model_2"}


def check_allowed(message: Message, client: str, supervision: str) -> None:
    """Keys and value types of one message against the allow-list; strings only where they name
    the method (one of the table's), or this client and its level."""
    content = message.content
    assert set(content.array_records) <= MODEL_KEYS
    for key, record in content.config_records.items():
        assert key in {"config", "client"}
        assert set(record) <= CONFIG_KEYS | {"name", "supervision"}
        for name, value in record.items():
            if name in STRING_KEYS:
                assert value in {client, supervision} or (name == "method" and value in METHODS), (name, value)
            else:
                assert isinstance(value, (int, float, bool)) and math.isfinite(value), (name, value)
    for key, record in content.metric_records.items():
        assert key == "metrics" and set(record) <= METRIC_KEYS
        assert all(isinstance(v, (int, float)) for v in record.values())


@pytest.mark.parametrize("method", ["fedavg", "fedmix"])
def test_every_message_of_a_round_holds_only_allowed_keys_and_the_clients_own_name(tmp_path, tiny_settings, method,
                                                                                  task_identity):
    if method == "fedmix":
        write_mixed_client_data(tmp_path)
        settings = mixed_settings(tmp_path, num_server_rounds=1, tau=0.0)
    else:
        write_client_data(tmp_path)
        settings = tiny_settings(tmp_path, num_server_rounds=1)
    grid = InProcessGrid(make_client_app(METHODS, ClientSite.of(settings)), settings.clients)
    store = run_server(grid, settings)
    assert [entry["round"] for entry in store.history()] == [1]

    node_client = {node: settings.clients[k] for node, k in grid.nodes.items()}
    kinds = set()
    for direction, msg in grid.exchanged:
        assert not msg.has_error(), msg.error
        node = msg.metadata.dst_node_id if direction == "sent" else msg.metadata.src_node_id
        client = node_client[node]
        check_allowed(msg, client, settings.supervision_of(client))
        kinds.add((direction, msg.metadata.message_type))
        if direction == "sent" and msg.metadata.message_type != MessageType.QUERY:
            assert msg.content["config"]["client"] == client
    assert kinds == {(d, t) for d in ("sent", "received") for t in (MessageType.QUERY, MessageType.TRAIN,
                                                                     MessageType.EVALUATE)}
    if method == "fedmix":  # both models travel, and the weak clients trained too
        assert any(set(m.content.array_records) == MODEL_KEYS for d, m in grid.exchanged if d == "received")


def test_the_allow_list_catches_a_path_or_another_clients_name(task_identity):
    leaking = Message(RecordDict({"config": ConfigRecord({"client": "a", "supervision": "pixel",
                                                          "method": "/srv/data"})}),
                      dst_node_id=1, message_type=MessageType.TRAIN)
    with pytest.raises(AssertionError):
        check_allowed(leaking, "a", "pixel")
    other = Message(RecordDict({"client": ConfigRecord({"name": "b"}), "metrics": MetricRecord({"val_dice": 0.5})}),
                    dst_node_id=1, message_type=MessageType.EVALUATE)
    with pytest.raises(AssertionError):
        check_allowed(other, "a", "pixel")
