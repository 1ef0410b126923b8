"""Run settings at the Flower boundary: a deployment's run config, and the config messages carry.

A deployment sets one run-config key, ``settings``: the path of a TOML or JSON file of
:class:`~fednuclei.run_settings.RunSettings` fields (``method``, ``clients``, ``supervision``,
``num_server_rounds``...), read by the ServerApp; relative paths resolve against its working
folder. The ``run_settings.json`` a Kedro run writes is such a file. ``flwr run`` accepts only
keys declared in ``[tool.flwr.app.config]``, so that table lists exactly :data:`DEPLOYMENT_KEYS`.

Messages carry the settings as a ``ConfigRecord`` of field names and plain values (lists for
tuples) plus ``server-round``; :func:`message_config` writes it, :func:`read_message_config`
reads it back.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fednuclei.methods import settings_for
from fednuclei.run_settings import RunSettings

# Run-config key -> what a deployment says with it.
DEPLOYMENT_KEYS = {
    "settings": "TOML or JSON file of the run's settings (method, clients, supervision, budget)",
}
ROUND_KEY = "server-round"


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


def message_config(settings: RunSettings, server_round: int) -> dict[str, Any]:
    """What a server message carries in its ``ConfigRecord``: the settings and the round."""
    return {**settings.to_dict(), ROUND_KEY: server_round}


def read_message_config(config: Mapping[str, Any]) -> tuple[RunSettings, int]:
    """The settings and the round a server message carries (see :func:`message_config`)."""
    values = dict(config)
    server_round = int(values.pop(ROUND_KEY))
    return RunSettings.from_mapping(values, where="message config"), server_round
