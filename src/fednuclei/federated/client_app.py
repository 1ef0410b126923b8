"""fednuclei ClientApp: one hospital's local training and validation, for every federated method.

The run settings arrive with every message (:mod:`fednuclei.federated.run_config`), so this app
reads nothing from its own run config: simulation and deployment behave the same. Which hospital
this node is comes from its node config:

* simulation: Flower gives each virtual SuperNode a ``partition-id``; it indexes the run's
  client list, and the data roots resolve against the run's ``data_path``;
* deployment: the hospital starts its SuperNode with
  ``--node-config "client='breast' data-path='/srv/fednuclei'"``: its own name and the project
  folder holding its data, which never leaves the site.

Training calls the ``local_training`` of the run's method (:data:`fednuclei.methods.METHODS`) on
the received global models. Replies carry the trained weights (none from a client that did not
train), a ``MetricRecord`` (loss, seconds, usable images) and a ``ConfigRecord`` ``client``
naming the hospital and its supervision; record keys are in :mod:`fednuclei.federated.protocol`.
A ``query`` message answers who this node is (see :mod:`fednuclei.federated.discovery`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fednuclei.federated.protocol import ARRAYS, CLIENT, CONFIG, METRICS, USABLE_KEY, WEIGHT_KEY, reference_key
from fednuclei.federated.run_config import read_message_config
from fednuclei.methods import METHODS, Method
from fednuclei.methods.client_data import ClientData, load_client_data
from fednuclei.methods.common import LocalRound, build_model, local_seed, round_lr, validation_dice
from fednuclei.model.device import pick_device
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings


def make_client_app(methods: Mapping[str, Method]) -> ClientApp:
    """A ClientApp that trains with the methods of ``methods`` (by the name the settings give).

    The deployed app (:data:`app`) uses :data:`~fednuclei.methods.METHODS`; the simulation binds
    its own copy, which travels to the simulated clients with the app.
    """
    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        """Train the received global model(s) on this client's patches for ``local_epochs``."""
        settings, server_round = read_message_config(msg.content[CONFIG])
        method = methods[settings.method]
        data = _client_data(context, settings)
        keys = (ARRAYS, *method.extra_models)
        models = [_received_model(msg, settings, key) for key in keys]
        references = tuple(list(_received_model(msg, settings, reference_key(key)).parameters())
                           for key in keys if reference_key(key) in msg.content)
        local = LocalRound(local_seed(settings, server_round, data.name), round_lr(settings, server_round), references)
        result = method.local_training(models, data, settings, pick_device(), local)
        metrics = MetricRecord({
            # a MetricRecord value must be a number; the server reads usable 0 as "no loss"
            "train_loss": result.loss if result.trained else 0.0,
            "train_seconds": result.seconds,
            USABLE_KEY: result.usable_images,
        })
        # A client that did not train sends no weights: its weight is 0 whatever they are.
        return _reply(msg, _client_record(data), metrics,
                      {key: ArrayRecord(model.state_dict()) for key, model in zip(keys, models) if result.trained})

    client_app.query()(query)
    client_app.evaluate()(evaluate)
    return client_app


def query(msg: Message, context: Context) -> Message:
    """Who this node is: ``client`` = {name, supervision}, from its node config and the run
    settings sent with the message. Reads no data."""
    settings, _ = read_message_config(msg.content[CONFIG])
    name, _ = client_identity(context.node_config, settings)
    client = ConfigRecord({"name": name, "supervision": settings.client_supervision.get(name, "pixel")})
    return Message(content=RecordDict({CLIENT: client}), reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    """Mean pixel Dice of the received global model on this client's validation tiles."""
    settings, _ = read_message_config(msg.content[CONFIG])
    data = _client_data(context, settings)
    metrics = {"val_dice": 0.0, WEIGHT_KEY: 0}
    if data.val:
        scores = validation_dice(_received_model(msg, settings, ARRAYS), data.val, settings, pick_device())
        metrics = {"val_dice": sum(scores) / len(scores), WEIGHT_KEY: len(scores)}
    return _reply(msg, _client_record(data), MetricRecord(metrics))


def client_identity(node_config: Mapping[str, object], settings: RunSettings) -> tuple[str, Path]:
    """The client name and data base folder of this node.

    Raises:
        ValueError: the node config has neither ``client`` nor a usable ``partition-id``.
    """
    if "client" in node_config:
        name = str(node_config["client"])
    elif "partition-id" in node_config:
        index = int(node_config["partition-id"])
        if not 0 <= index < len(settings.clients):
            raise ValueError(f"partition-id {index} has no client: the run names {len(settings.clients)} clients "
                             f"{list(settings.clients)}")
        name = settings.clients[index]
    else:
        raise ValueError("node config must give client='<name>' (deployment) or partition-id (simulation); "
                         f"got {dict(node_config)}")
    return name, Path(str(node_config.get("data-path", settings.data_path))).expanduser()


def _client_data(context: Context, settings: RunSettings) -> ClientData:
    name, base = client_identity(context.node_config, settings)
    return load_client_data(name, base, settings)


def _received_model(msg: Message, settings: RunSettings, key: str) -> UNet:
    """A model of the run's architecture holding the weights the message carries under ``key``."""
    model = build_model(settings)
    model.load_state_dict(msg.content[key].to_torch_state_dict())
    return model


def _client_record(data: ClientData) -> ConfigRecord:
    return ConfigRecord({"name": data.name, "supervision": data.supervision})


def _reply(msg: Message, client: ConfigRecord, metrics: MetricRecord,
           arrays: dict[str, ArrayRecord] | None = None) -> Message:
    content = RecordDict({METRICS: metrics, CLIENT: client})
    for key, record in (arrays or {}).items():
        content[key] = record
    return Message(content=content, reply_to=msg)


app = make_client_app(METHODS)
