"""Run settings at the Flower boundary: a deployment's run config, and the config messages carry.

A deployment sets one run-config key, ``settings``: the path of a TOML or JSON file of
:class:`~fednuclei.run_settings.RunSettings` fields (``method``, ``clients``, ``supervision``,
``num_server_rounds``...), read by the ServerApp; relative paths resolve against its working
folder. The ``run_settings.json`` a Kedro run writes is such a file. ``flwr run`` accepts only
keys declared in ``[tool.flwr.app.config]``, so that table lists exactly :data:`DEPLOYMENT_KEYS`.

A message to a client carries, in a ``ConfigRecord``, only what that client needs
(:func:`client_config`): how to train and validate in this round (:data:`CLIENT_FIELDS`, with the
round's learning rate), its own name and supervision level, and ``server-round``. Other clients'
names, levels and data versions, and the server's paths, stay on the server; where its data lie
is the client's own knowledge (:class:`~fednuclei.federated.client_app.ClientSite`).
:func:`read_client_config` rebuilds the client's settings from it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fednuclei.methods import settings_for
from fednuclei.methods.common import round_lr
from fednuclei.run_settings import RunSettings

# Run-config key -> what a deployment says with it.
DEPLOYMENT_KEYS = {
    "settings": "TOML or JSON file of the run's settings (method, clients, supervision, budget)",
}
ROUND_KEY = "server-round"
CLIENT_KEY = "client"
SUPERVISION_KEY = "supervision"
# The settings a client trains and validates with; nothing here names a place or another client.
# lr is the round's (the schedule stays on the server).
CLIENT_FIELDS = ("method", "local_epochs", "batch_size", "lr", "seed", "width", "depth", "groups", "flip_rotate",
                 "contour_width", "contour_weight", "infer_patch", "infer_overlap", "proximal_mu", "tau",
                 "min_box_fill", "min_covered_boxes", "confidence_high", "confidence_low", "gamma_low", "gamma_high")


def settings_from_run_config(config: Mapping[str, Any]) -> RunSettings:
    """The settings a deployment's run config points at (an empty ``settings``: the defaults,
    which name no client).

    Raises:
        ValueError: an unknown key, a settings file that cannot be read, or bad settings, named.
    """
    unknown = sorted(set(config) - set(DEPLOYMENT_KEYS))
    if unknown:
        raise ValueError(f"unknown run config keys {unknown}; a deployment sets {sorted(DEPLOYMENT_KEYS)}")
    path = str(config.get("settings", ""))
    return settings_for(read_settings_file(Path(path)) if path else {}, where=path or "run config")


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings in a ``.toml`` or ``.json`` file, as a mapping of field names to values.

    Raises:
        ValueError: naming the file, when it is missing, of another kind, or does not parse.
    """
    path = path.expanduser()
    if not path.is_file():
        raise ValueError(f"settings file {path} not found")
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            raise ValueError("use a .toml or .json file")
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"settings file {path}: {error}") from error
    if not isinstance(values, dict):
        raise ValueError(f"settings file {path}: expected a table of settings, got {type(values).__name__}")
    return values


def client_config(settings: RunSettings, server_round: int, client: str) -> dict[str, Any]:
    """What the server tells ``client`` in ``server_round`` (see the module's docstring)."""
    values = {name: getattr(settings, name) for name in CLIENT_FIELDS}
    values["lr"] = round_lr(settings, max(server_round, 1))
    return {**values, CLIENT_KEY: client, SUPERVISION_KEY: settings.supervision_of(client), ROUND_KEY: server_round}


def read_client_config(config: Mapping[str, Any], **site: Any) -> tuple[RunSettings, int]:
    """The settings of the client a message is for, and the round: the message's
    :func:`client_config`, with ``site``'s fields (``data_path``, ``train_roots``, ``val_roots``).

    Raises:
        ValueError: a key that is not one of :data:`CLIENT_FIELDS` (the server sends nothing
            else), or bad values, named.
    """
    values = dict(config)
    server_round = int(values.pop(ROUND_KEY))
    client, level = str(values.pop(CLIENT_KEY)), str(values.pop(SUPERVISION_KEY))
    unexpected = sorted(set(values) - set(CLIENT_FIELDS))
    if unexpected:
        raise ValueError(f"message config: unexpected keys {unexpected}")
    settings = RunSettings.from_mapping({**values, "clients": [client], "supervision": [level], **site},
                                        where="message config")
    return settings, server_round
