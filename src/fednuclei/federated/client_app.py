"""fednuclei ClientApp: local training (FedAvg, FedMix, FedST, FedRGD) and validation at one hospital.

The run settings arrive with every message (the server puts them in the message's
``ConfigRecord``), so this app reads nothing from its own run config: simulation and deployment
behave the same. Which hospital this node is comes from its node config (see
:mod:`fednuclei.federated.client_data`).

Training dispatches on the ``method`` of the settings sent with the message: FedAvg below,
the mixed-supervision methods in :mod:`fednuclei.federated.local_training`. Replies carry the
trained weights, a ``MetricRecord`` with ``num-examples`` (the FedAvg weight; the usable images
for the other methods, also sent as ``usable_images``) and a ``ConfigRecord`` ``client`` naming
the hospital (and its supervision level), so the server can keep per-client metrics; record keys
are in :mod:`fednuclei.federated.protocol`.

A ``query`` message answers who this node is (client name and supervision): the
mixed-supervision strategies send one to every node before their first round to learn which node
id plays which client (see :func:`fednuclei.federated.strategies.discover_clients`).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fednuclei.federated.client_data import ClientData, client_identity, load_client_data
from fednuclei.federated.local_training import LocalResult, fedmix_local_training, fedst_local_training
from fednuclei.federated.protocol import ARRAYS, CLIENT, CONFIG, FEDMIX_MODELS, METRICS, USABLE_KEY, WEIGHT_KEY
from fednuclei.federated.settings import FederatedSettings
from fednuclei.federated.task import build_model, local_seed, validation_dice
from fednuclei.model.training import pick_device, train_epochs
from fednuclei.model.unet import UNet

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model(s) on this client's patches for ``local-epochs``, the
    way the run's ``method`` says."""
    settings, server_round = _read_config(msg)
    data = _client_data(context, settings)
    if settings.method == "fedavg":
        return _train_fedavg(msg, settings, server_round, data)
    device, seed = pick_device(), local_seed(settings, server_round, data.name)
    if settings.method == "fedmix":
        model_1, model_2 = (_received_model(msg, settings, key) for key in FEDMIX_MODELS)
        result = fedmix_local_training(model_1, model_2, data.train, data.supervision, settings, device, seed)
        trained = dict(zip(FEDMIX_MODELS, (model_1, model_2)))
    else:  # fedst, fedrgd: one model, ground truth or self-training
        model = _received_model(msg, settings, ARRAYS)
        result = fedst_local_training(model, data.train, data.supervision, settings, device, seed)
        trained = {ARRAYS: model}
    # A client that did not train sends no weights: its weight is 0 whatever they are.
    arrays = {key: ArrayRecord(m.state_dict()) for key, m in trained.items()} if result.trained else {}
    return _reply(msg, _client_record(data), _train_metrics(result), arrays)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Who this node is: ``client`` = {name, supervision}, from its node config and the run
    settings sent with the message. Reads no data."""
    settings, _ = _read_config(msg)
    name, _ = client_identity(context.node_config, settings)
    client = ConfigRecord({"name": name, "supervision": settings.client_supervision.get(name, "pixel")})
    return Message(content=RecordDict({CLIENT: client}), reply_to=msg)


def _train_fedavg(msg: Message, settings: FederatedSettings, server_round: int, data: ClientData) -> Message:
    """FedAvg: train the received model on the client's masked patches."""
    model = build_model(settings)
    model.load_state_dict(msg.content[ARRAYS].to_torch_state_dict())
    metrics = {"train_loss": 0.0, "train_seconds": 0.0, "num-examples": 0}
    if data.train:
        result = train_epochs(model, data.train, epochs=settings.local_epochs, batch_size=settings.batch_size,
                              lr=settings.lr, device=pick_device(), seed=local_seed(settings, server_round, data.name))
        metrics = {"train_loss": result.loss, "train_seconds": result.seconds, "num-examples": result.n_samples}
    # A client without masks sends the global model back with weight 0: it takes part in the
    # round (FedAvg samples every node) but does not move the average.
    return _reply(msg, ConfigRecord({"name": data.name}), MetricRecord(metrics),
                  {ARRAYS: ArrayRecord(model.state_dict())})


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Mean pixel Dice of the received global model on this client's validation tiles."""
    settings, _ = _read_config(msg)
    data = _client_data(context, settings)
    metrics = {"val_dice": 0.0, "num-examples": 0}
    if data.val:
        model = _received_model(msg, settings, ARRAYS)
        scores = validation_dice(model, data.val, settings, pick_device())
        metrics = {"val_dice": sum(scores) / len(scores), "num-examples": len(scores)}
    client = ConfigRecord({"name": data.name}) if settings.method == "fedavg" else _client_record(data)
    return _reply(msg, client, MetricRecord(metrics))


def _read_config(msg: Message) -> tuple[FederatedSettings, int]:
    """The run settings and the round number the server sent with ``msg``."""
    config = dict(msg.content[CONFIG])
    server_round = int(config.pop("server-round"))
    return FederatedSettings.from_run_config(config), server_round


def _client_data(context: Context, settings: FederatedSettings) -> ClientData:
    name, base = client_identity(context.node_config, settings)
    return load_client_data(name, base, settings)


def _received_model(msg: Message, settings: FederatedSettings, key: str) -> UNet:
    """A model of the run's architecture holding the weights the message carries under ``key``."""
    model = build_model(settings)
    model.load_state_dict(msg.content[key].to_torch_state_dict())
    return model


def _client_record(data: ClientData) -> ConfigRecord:
    return ConfigRecord({"name": data.name, "supervision": data.supervision})


def _train_metrics(result: LocalResult) -> MetricRecord:
    """The reply metrics of a mixed-supervision client; a client that did not train reports loss
    0.0 (a MetricRecord value must be a number; the server reads usable 0 as "no loss")."""
    return MetricRecord({
        "train_loss": result.loss if result.trained else 0.0,
        "train_seconds": result.seconds,
        WEIGHT_KEY: result.usable_images,
        USABLE_KEY: result.usable_images,
    })


def _reply(msg: Message, client: ConfigRecord, metrics: MetricRecord,
           arrays: dict[str, ArrayRecord] | None = None) -> Message:
    content = RecordDict({METRICS: metrics, CLIENT: client})
    for key, record in (arrays or {}).items():
        content[key] = record
    return Message(content=content, reply_to=msg)
