"""fednuclei ClientApp: local FedAvg training and validation at one hospital.

The run settings arrive with every message (the server puts them in the message's
``ConfigRecord``), so this app reads nothing from its own run config: simulation and deployment
behave the same. Which hospital this node is comes from its node config (see
:mod:`fednuclei.federated.client_data`).

Replies carry an ``ArrayRecord`` (after training), a ``MetricRecord`` with ``num-examples`` (the
FedAvg weight) and a ``ConfigRecord`` ``client`` naming the hospital, so the server can keep
per-client metrics.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fednuclei.federated.client_data import ClientData, client_identity, load_client_data
from fednuclei.federated.settings import FederatedSettings
from fednuclei.federated.task import build_model, local_seed, validation_dice
from fednuclei.model.training import pick_device, train_epochs

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this client's patches for ``local-epochs``."""
    settings, server_round = _read_config(msg)
    data = _client_data(context, settings)
    model = build_model(settings)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    metrics = {"train_loss": 0.0, "train_seconds": 0.0, "num-examples": 0}
    if data.train:
        result = train_epochs(model, data.train, epochs=settings.local_epochs, batch_size=settings.batch_size,
                              lr=settings.lr, device=pick_device(), seed=local_seed(settings, server_round, data.name))
        metrics = {"train_loss": result.loss, "train_seconds": result.seconds, "num-examples": result.n_samples}
    # A client without masks sends the global model back with weight 0: it takes part in the
    # round (FedAvg samples every node) but does not move the average.
    return _reply(msg, data.name, MetricRecord(metrics), ArrayRecord(model.state_dict()))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Mean pixel Dice of the received global model on this client's validation tiles."""
    settings, _ = _read_config(msg)
    data = _client_data(context, settings)
    metrics = {"val_dice": 0.0, "num-examples": 0}
    if data.val:
        model = build_model(settings)
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        scores = validation_dice(model, data.val, settings, pick_device())
        metrics = {"val_dice": sum(scores) / len(scores), "num-examples": len(scores)}
    return _reply(msg, data.name, MetricRecord(metrics))


def _read_config(msg: Message) -> tuple[FederatedSettings, int]:
    """The run settings and the round number the server sent with ``msg``."""
    config = dict(msg.content["config"])
    server_round = int(config.pop("server-round"))
    return FederatedSettings.from_run_config(config), server_round


def _client_data(context: Context, settings: FederatedSettings) -> ClientData:
    name, base = client_identity(context.node_config, settings)
    return load_client_data(name, base, settings)


def _reply(msg: Message, client: str, metrics: MetricRecord, arrays: ArrayRecord | None = None) -> Message:
    content = RecordDict({"metrics": metrics, "client": ConfigRecord({"name": client})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)
