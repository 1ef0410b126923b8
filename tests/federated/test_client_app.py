"""The ClientApp's train and evaluate handlers, called in-process with hand-made messages."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from fednuclei.data.tiles import load_tile_sets, save_tile_sets
from fednuclei.federated.client_app import ClientSite, make_client_app
from fednuclei.federated.run_config import client_config
from fednuclei.methods import METHODS
from fednuclei.methods.common import build_model
from tests.sample_data import mixed_settings, write_mixed_client_data


def instruction(settings, message_type: str, server_round: int = 1, client: str | None = None) -> Message:
    config = ConfigRecord(client_config(settings, server_round, client or settings.clients[0]))
    content = RecordDict({"arrays": ArrayRecord(build_model(settings).state_dict()), "config": config})
    return Message(content=content, dst_node_id=2, message_type=message_type)


def context(node_config: dict) -> Context:
    return Context(run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config={})


def simulated(settings):
    """The ClientApp of a simulation of ``settings``: its clients' sites bound in."""
    return make_client_app(METHODS, ClientSite.of(settings))


def test_train_replies_updated_weights_with_its_example_count(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root)
    sent = instruction(settings, MessageType.TRAIN, client="beta")
    out = simulated(settings)(sent, context({"partition-id": 1, "num-partitions": 2}))
    metrics = out.content["metrics"]
    assert metrics["usable_images"] == 2 and metrics["train_loss"] > 0 and metrics["train_seconds"] > 0
    assert out.content["client"]["name"] == "beta"
    before, after = sent.content["arrays"], out.content["arrays"]
    assert set(after) == set(before)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_evaluate_replies_mean_validation_dice(client_data_root, tiny_settings, task_identity):
    settings = tiny_settings(client_data_root)
    # a deployed node: its name and data folder from its node config, the roots from the run's layout
    deployed = make_client_app(METHODS, ClientSite(train_roots=settings.train_roots, val_roots=settings.val_roots))
    out = deployed(instruction(settings, MessageType.EVALUATE, client="alpha"),
                   context({"client": "alpha", "data-path": str(client_data_root)}))
    metrics = out.content["metrics"]
    assert metrics["num-examples"] == 1 and 0.0 <= metrics["val_dice"] <= 1.0


def test_client_without_masks_replies_zero_examples(client_data_root, tiny_settings, task_identity):
    for root in ("05_model_input/client_patches", "04_feature/client_partitions"):
        sets = load_tile_sets(client_data_root / root)
        save_tile_sets({c: [replace(t, instances=None, supervision="none") for t in ts] for c, ts in sets.items()},
                       client_data_root / root)
    settings = tiny_settings(client_data_root)
    node, app = context({"partition-id": 0}), simulated(settings)
    trained = app(instruction(settings, MessageType.TRAIN), node)
    evaluated = app(instruction(settings, MessageType.EVALUATE), node)
    assert trained.content["metrics"]["usable_images"] == 0 and evaluated.content["metrics"]["num-examples"] == 0


# --- mixed supervision ------------------------------------------------------------------------

def mixed_instruction(settings, keys, client: str, server_round: int = 1) -> Message:
    config = ConfigRecord(client_config(settings, server_round, client))
    models = {"arrays": build_model(settings), "model_2": build_model(settings, which=2)}
    content = RecordDict({key: ArrayRecord(models[key].state_dict()) for key in keys})
    content["config"] = config
    return Message(content=content, dst_node_id=2, message_type=MessageType.TRAIN)


def test_query_names_the_client_only(tmp_path, task_identity):
    settings = mixed_settings(tmp_path)
    sent = Message(content=RecordDict(), dst_node_id=2, message_type=MessageType.QUERY)
    out = simulated(settings)(sent, context({"partition-id": 1}))
    assert dict(out.content["client"]) == {"name": "box_site"}


def test_fedmix_weak_client_replies_both_models_and_its_usable_images(tmp_path, task_identity):
    write_mixed_client_data(tmp_path)
    settings = mixed_settings(tmp_path, tau=0.0)  # every image agrees: the 'none' client trains
    sent = mixed_instruction(settings, ("arrays", "model_2"), "blind_site")
    out = simulated(settings)(sent, context({"partition-id": 2}))
    metrics = out.content["metrics"]
    assert out.content["client"]["supervision"] == "none"
    assert metrics["usable_images"] == 2 and metrics["train_loss"] > 0
    assert set(out.content.array_records) == {"arrays", "model_2"}
    for key in ("arrays", "model_2"):
        before, after = sent.content[key], out.content[key]
        assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_fedmix_weak_client_without_usable_image_sends_no_weights(tmp_path, task_identity):
    write_mixed_client_data(tmp_path)
    settings = mixed_settings(tmp_path, tau=1.0, min_covered_boxes=1.0, min_box_fill=1.0)
    out = simulated(settings)(mixed_instruction(settings, ("arrays", "model_2"), "box_site"), context({"partition-id": 1}))
    assert out.content["metrics"]["usable_images"] == 0 and not out.content.array_records


def test_fedst_pixel_client_trains_one_model(tmp_path, task_identity):
    write_mixed_client_data(tmp_path)
    settings = mixed_settings(tmp_path, method="fedst")
    app = simulated(settings)
    out = app(mixed_instruction(settings, ("arrays",), "pixel_site"), context({"partition-id": 0}))
    assert out.content["metrics"]["usable_images"] == 2 and set(out.content.array_records) == {"arrays"}
    evaluated = app(instruction(settings, MessageType.EVALUATE, client="pixel_site"), context({"partition-id": 0}))
    assert evaluated.content["metrics"]["num-examples"] == 1
    weak = app(instruction(settings, MessageType.EVALUATE, client="blind_site"), context({"partition-id": 2}))
    assert weak.content["metrics"]["num-examples"] == 0  # no masks at a weak client: nothing to validate


# --- which client a node plays ----------------------------------------------------------------

SIMULATED = ClientSite(data_path="/sim/base", clients=("alpha", "beta"))


def test_simulation_node_plays_the_client_its_partition_id_names():
    name, site = SIMULATED.for_node({"partition-id": 1, "num-partitions": 2})
    assert (name, site.data_path) == ("beta", "/sim/base")


def test_deployed_node_names_itself_its_data_folder_and_roots():
    name, site = ClientSite().for_node({"client": "gamma", "data-path": "/hospital/data", "train-roots": "a/p,b/q"})
    assert (name, site.data_path, site.train_roots, site.val_roots) == ("gamma", "/hospital/data", ("a/p", "b/q"),
                                                                         ClientSite().val_roots)


@pytest.mark.parametrize("node_config, message", [
    ({"partition-id": 2}, "has no client"),
    ({}, "node config must give"),
])
def test_client_identity_errors(node_config, message):
    with pytest.raises(ValueError, match=message):
        SIMULATED.for_node(node_config)


def test_a_message_for_another_client_is_refused_and_the_server_learns_only_the_error_class(
        client_data_root, tiny_settings, task_identity, caplog):
    settings = tiny_settings(client_data_root)
    out = simulated(settings)(instruction(settings, MessageType.TRAIN, client="alpha"), context({"partition-id": 1}))
    assert out.has_error() and out.error.reason == "ValueError"
    assert "a message for client 'alpha' reached the node playing 'beta'" in caplog.text  # the node's own log


def test_a_client_error_naming_files_reaches_the_server_as_its_class_only(client_data_root, tiny_settings,
                                                                          task_identity, caplog):
    settings = tiny_settings(client_data_root)
    tiles_json = next((client_data_root / settings.train_roots[0] / "beta").glob("*.json"))
    tiles_json.unlink()
    out = simulated(settings)(instruction(settings, MessageType.TRAIN, client="beta"), context({"partition-id": 1}))
    assert out.has_error() and out.error.reason in {"FileNotFoundError", "ValueError"}
    assert str(client_data_root) not in out.error.reason
    assert str(client_data_root) in caplog.text  # the details stay in the node's log
