"""The ClientApp's train and evaluate handlers, called in-process with hand-made messages."""

from dataclasses import replace

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from fednuclei.data.tiles import load_tile_sets, save_tile_sets
from fednuclei.federated import client_app
from fednuclei.federated.task import build_model


def instruction(settings, message_type: str, server_round: int = 1) -> Message:
    config = ConfigRecord({**settings.to_run_config(), "server-round": server_round})
    content = RecordDict({"arrays": ArrayRecord(build_model(settings).state_dict()), "config": config})
    return Message(content=content, dst_node_id=2, message_type=message_type)


def context(node_config: dict) -> Context:
    return Context(run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config={})


def test_train_replies_updated_weights_with_its_example_count(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root)
    sent = instruction(settings, MessageType.TRAIN)
    out = client_app.train(sent, context({"partition-id": 1, "num-partitions": 2}))
    metrics = out.content["metrics"]
    assert metrics["num-examples"] == 2 and metrics["train_loss"] > 0 and metrics["train_seconds"] > 0
    assert out.content["client"]["name"] == "beta"
    before, after = sent.content["arrays"], out.content["arrays"]
    assert set(after) == set(before)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_evaluate_replies_mean_validation_dice(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root)
    out = client_app.evaluate(instruction(settings, MessageType.EVALUATE),
                              context({"client": "alpha", "data-path": str(client_data_root)}))
    metrics = out.content["metrics"]
    assert metrics["num-examples"] == 1 and 0.0 <= metrics["val_dice"] <= 1.0


def test_client_without_masks_replies_zero_examples(client_data_root, tiny_settings, task_identity):
    for root in ("05_model_input/client_patches", "04_feature/client_partitions"):
        sets = load_tile_sets(client_data_root / root)
        save_tile_sets({c: [replace(t, instances=None, supervision="none") for t in ts] for c, ts in sets.items()},
                       client_data_root / root)
    settings = tiny_settings(client_data_root)
    node = context({"partition-id": 0})
    trained = client_app.train(instruction(settings, MessageType.TRAIN), node)
    evaluated = client_app.evaluate(instruction(settings, MessageType.EVALUATE), node)
    assert trained.content["metrics"]["num-examples"] == 0 and evaluated.content["metrics"]["num-examples"] == 0
