"""fednuclei ClientApp: one hospital's local training and validation, for every federated method.

A message tells a client only how to train in this round, who it is and its supervision level
(:func:`~fednuclei.federated.run_config.client_config`). Where its data lie is the node's own
knowledge, a :class:`ClientSite`:

* simulation: the site is bound into the app (:func:`make_client_app`); Flower gives each virtual
  SuperNode a ``partition-id``, which indexes the site's client list;
* deployment: the hospital starts its SuperNode with
  ``--node-config "client='breast' data-path='/srv/fednuclei'"``: its own name and the project
  folder holding its data, which never leaves the site (``train-roots`` and ``val-roots``,
  comma-separated, when its tile folders are not the project's defaults).

Training calls the ``local_training`` of the method (:data:`fednuclei.methods.METHODS`) on the
received global models. Replies carry the trained weights (none from a client that did not
train), a ``MetricRecord`` (loss, seconds, usable images) and a ``ConfigRecord`` ``client``
naming the hospital and its supervision; record keys are in :mod:`fednuclei.federated.protocol`.
A ``query`` message answers who this node is (see :mod:`fednuclei.federated.discovery`).
Under ``secure_aggregation`` training messages follow Flower's SecAgg+ protocol instead
(:mod:`fednuclei.federated.secure_aggregation`): they go to :class:`SecureTrainingClient`, the
same local training in the legacy form Flower's ``secaggplus_mod`` masks.

A handler's exception reaches the server as its class name only (:func:`errors_without_data`):
the message, which may name files and tiles, stays in the node's own log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS as SECAGGPLUS_KEY

from fednuclei.federated.protocol import (
    ARRAYS,
    CLIENT,
    CONFIG,
    METRICS,
    SECAGG_CLIPPING_RANGE,
    USABLE_KEY,
    WEIGHT_KEY,
    reference_key,
)
from fednuclei.federated.run_config import read_client_config
from fednuclei.methods import METHODS, Method
from fednuclei.methods.client_data import ClientData, load_client_data
from fednuclei.methods.common import LocalResult, LocalRound, build_model, local_seed, round_lr, validation_dice
from fednuclei.model.device import pick_device
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientSite:
    """What a node knows and the server never sends: where its data lie and, in simulation, the
    client each ``partition-id`` plays.

    Attributes:
        data_path: the folder the roots resolve against.
        train_roots, val_roots: as in :class:`~fednuclei.run_settings.RunSettings`.
        clients: the run's clients, in partition order (simulation only).
    """

    data_path: str = RunSettings.data_path
    train_roots: tuple[str, ...] = RunSettings.train_roots
    val_roots: tuple[str, ...] = RunSettings.val_roots
    clients: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: RunSettings) -> ClientSite:
        """The site of every simulated client of ``settings``."""
        return cls(settings.data_path, settings.train_roots, settings.val_roots, settings.clients)

    def for_node(self, node_config: Mapping[str, object]) -> tuple[str, ClientSite]:
        """The client this node plays and its site, from its node config (see the module docstring).

        Raises:
            ValueError: the node config has neither ``client`` nor a usable ``partition-id``.
        """
        if "client" in node_config:
            name = str(node_config["client"])
        elif "partition-id" in node_config:
            index = int(node_config["partition-id"])
            if not 0 <= index < len(self.clients):
                raise ValueError(f"partition-id {index} has no client: the simulation has {len(self.clients)} "
                                 f"clients {list(self.clients)}")
            name = self.clients[index]
        else:
            raise ValueError("node config must give client='<name>' (deployment) or partition-id (simulation); "
                             f"got {dict(node_config)}")
        roots = {field: tuple(str(node_config[key]).split(",")) for field, key in
                 (("train_roots", "train-roots"), ("val_roots", "val-roots")) if key in node_config}
        return name, replace(self, data_path=str(node_config.get("data-path", self.data_path)), **roots)


def errors_without_data(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower mod: a handler's exception goes to this node's log in full, and to the server as an
    error whose reason is the exception's class name, which names no file, tile or path."""
    try:
        return call_next(msg, context)
    except Exception as error:  # noqa: BLE001 - every failure becomes an error reply
        logger.exception("this node failed to handle a %s message", msg.metadata.message_type)
        return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, type(error).__name__), reply_to=msg)


def make_client_app(methods: Mapping[str, Method], site: ClientSite | None = None) -> ClientApp:
    """A ClientApp that trains with the methods of ``methods`` (by the name messages give).

    The deployed app (:data:`app`) uses :data:`~fednuclei.methods.METHODS` and learns its site
    from its node config; the simulation binds its own copy of the table and the run's site,
    which travel to the simulated clients with the app.
    """
    site = site or ClientSite()
    client_app = ClientApp(mods=[errors_without_data])
    secure_app = ClientApp(client_fn=lambda context: SecureTrainingClient(methods, site, context).to_client(),
                           mods=[secaggplus_mod])

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        """Train the received global model(s) on this client's patches for ``local_epochs``."""
        if SECAGGPLUS_KEY in msg.content:
            return secure_app(msg, context)
        settings, server_round = _settings(msg.content[CONFIG], context, site)
        method = methods[settings.method]
        keys = (ARRAYS, *method.extra_models)
        models = [_received_model(msg, settings, key) for key in keys]
        references = tuple(list(_received_model(msg, settings, reference_key(key)).parameters())
                           for key in keys if reference_key(key) in msg.content)
        data, result = _train_locally(method, models, settings, server_round, references)
        # A client that did not train sends no weights: its weight is 0 whatever they are.
        return _reply(msg, _client_record(data), MetricRecord(_train_metrics(result)),
                      {key: ArrayRecord(model.state_dict()) for key, model in zip(keys, models) if result.trained})

    @client_app.query()
    def query(msg: Message, context: Context) -> Message:
        """Who this node is: ``client`` = {name}, from its node config. Reads no data."""
        name, _ = site.for_node(context.node_config)
        return Message(content=RecordDict({CLIENT: ConfigRecord({"name": name})}), reply_to=msg)

    @client_app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        """Mean pixel Dice of the received global model on this client's validation tiles."""
        settings, _ = _settings(msg.content[CONFIG], context, site)
        data = _client_data(settings)
        metrics = {"val_dice": 0.0, WEIGHT_KEY: 0}
        if data.val:
            scores = validation_dice(_received_model(msg, settings, ARRAYS), data.val, settings, pick_device())
            metrics = {"val_dice": sum(scores) / len(scores), WEIGHT_KEY: len(scores)}
        return _reply(msg, _client_record(data), MetricRecord(metrics))

    return client_app


class SecureTrainingClient(NumPyClient):
    """The train handler's local round for a SecAgg+ run (one global model, FedAvg's weights):
    the weights as arrays in state-dict order, the training images as their weight, the
    metrics and the client's name and supervision in one dict, as Flower's legacy ``FitRes``
    has them."""

    def __init__(self, methods: Mapping[str, Method], site: ClientSite, context: Context):
        self.methods, self.site, self.node_context = methods, site, context

    def fit(self, parameters: list[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        """Train the received global model.

        Raises:
            ValueError: a trained weight beyond SecAgg+'s clipping range, which would silently
                corrupt the mean.
        """
        settings, server_round = _settings(config, self.node_context, self.site)
        model = build_model(settings)
        model.load_state_dict({key: torch.as_tensor(np.array(value))
                               for key, value in zip(model.state_dict(), parameters, strict=True)})
        data, result = _train_locally(self.methods[settings.method], [model], settings, server_round, ())
        weights = [value.cpu().numpy() for value in model.state_dict().values()]
        largest = max(float(np.abs(w).max()) for w in weights)
        if largest > SECAGG_CLIPPING_RANGE:
            raise ValueError(f"a trained weight of magnitude {largest:.3g} lies beyond secure aggregation's clipping "
                             f"range +-{SECAGG_CLIPPING_RANGE} (fednuclei.federated.protocol.SECAGG_CLIPPING_RANGE)")
        return weights, result.usable_images, {**_train_metrics(result), **_client_record(data)}


def _train_locally(method: Method, models: list[UNet], settings: RunSettings, server_round: int,
                   references: tuple) -> tuple[ClientData, LocalResult]:
    """The method's local round on this client's data: ``models`` train in place."""
    data = _client_data(settings)
    local = LocalRound(local_seed(settings, server_round, data.name), round_lr(settings, server_round), references)
    return data, method.local_training(models, data, settings, pick_device(), local)


def _train_metrics(result: LocalResult) -> dict[str, float | int]:
    return {
        # a MetricRecord value must be a number; the server reads usable 0 as "no loss"
        "train_loss": result.loss if result.trained else 0.0,
        "train_seconds": result.seconds,
        USABLE_KEY: result.usable_images,
    }


def _settings(config: Mapping[str, Any], context: Context, site: ClientSite) -> tuple[RunSettings, int]:
    """This node's settings for a message's ``config``, and the round.

    Raises:
        ValueError: the message is meant for another client than the one this node plays.
    """
    name, node_site = site.for_node(context.node_config)
    settings, server_round = read_client_config(config, data_path=node_site.data_path,
                                                train_roots=node_site.train_roots, val_roots=node_site.val_roots)
    if settings.clients != (name,):
        raise ValueError(f"a message for client {settings.clients[0]!r} reached the node playing {name!r}")
    return settings, server_round


def _client_data(settings: RunSettings) -> ClientData:
    return load_client_data(settings.clients[0], Path(settings.data_path).expanduser(), settings)


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
