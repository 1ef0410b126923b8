"""The parameters of a run, checked before its first node: each problem named by its key.

A node that fails on a bad parameter fails after the nodes before it have replaced their
outputs; ``kedro run`` calls :func:`check_parameters` first (``fednuclei.hooks.ParameterCheckHook``),
so that a bad value stops the run before anything is written. Checked, for the parameters the run
reads (``conf/<env>/parameters_*.yml`` and ``--params``): every key present and no unknown one,
types, ranges, split fractions adding up to 1, each client's configuration, and each method's
settings as its ``run_settings`` node will build them (the active compute profile, the method's
own parameters over it, the clients that start the federation).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from fednuclei.augment import AugmentationRecipe
from fednuclei.data.partition import LABEL_VIEWS, SPLITS, ClientConfigError, validate_clients
from fednuclei.methods import METHODS, profile_values, settings_for
from fednuclei.run_settings import RunSettings


class ParameterError(ValueError):
    """A parameter no node could use, named by its key."""


def check_parameters(parameters: Mapping[str, Any], used: Collection[str]) -> None:
    """Check the parameters a run reads.

    Args:
        parameters: every parameter of the run, ``--params`` included (Kedro's ``parameters``).
        used: the keys its nodes read, as in ``params:<key>`` (``splits``, ``fedavg.training``).

    Raises:
        ParameterError: the first problem found, naming its key.
    """
    if "clients" in used:
        _check_clients(_value(parameters, "clients"))
    if "splits" in used:
        _check_splits(_value(parameters, "splits"))
    if "patches" in used:
        _check_patches(_value(parameters, "patches"))
    if "augmentation" in used:
        _check_augmentation(_value(parameters, "augmentation"))
    clients = _value(parameters, "clients") if "clients" in used else None
    for key in sorted(used):
        namespace, _, name = key.rpartition(".")
        if name == "labels" and namespace in LABEL_VIEWS and _value(parameters, key) not in LABEL_VIEWS:
            raise ParameterError(f"parameter {key} must be one of {list(LABEL_VIEWS)}, got {_value(parameters, key)!r}")
        if name == "training" and namespace in METHODS:
            _check_training(parameters, namespace, clients)


def _value(parameters: Mapping[str, Any], key: str) -> Any:
    value = parameters
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ParameterError(f"parameter {key} is missing")
        value = value[part]
    return value


def _mapping(value: Any, key: str, of: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParameterError(f"parameter {key} must be a mapping of {of}, got {value!r}")
    return value


def _keys(value: Any, key: str, required: Collection[str], optional: Collection[str] = ()) -> Mapping[str, Any]:
    """``value``, after checking that it is a mapping with every ``required`` key and no unknown one."""
    _mapping(value, key, ", ".join(required))
    missing = [name for name in required if name not in value]
    if missing:
        raise ParameterError(f"parameter {key}.{missing[0]} is missing: {key} needs {', '.join(required)}, given "
                             f"together (where the run's environment sets {key}, it replaces the base's whole, "
                             "--params included)")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ParameterError(f"parameter {key}.{unknown[0]} is not a setting of {key}; its settings are "
                             f"{', '.join([*required, *optional])}")
    return value


def _integer(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"parameter {key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"parameter {key} must be >= {minimum}, got {value}")
    return value


def _check_splits(splits: Any) -> None:
    _keys(splits, "splits", (*SPLITS, "seed"))
    for name in SPLITS:
        value = splits[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ParameterError(f"parameter splits.{name} must be a fraction in [0, 1], got {value!r}")
    if splits["train"] == 0:
        raise ParameterError("parameter splits.train must be > 0: every client trains on its train split")
    total = sum(splits[name] for name in SPLITS)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ParameterError(f"parameters splits.train + splits.val + splits.test must add up to 1, got "
                             f"{' + '.join(str(splits[name]) for name in SPLITS)} = {total:g}")
    _integer(splits["seed"], "splits.seed")


def _check_patches(patches: Any) -> None:
    _keys(patches, "patches", ("size", "stride"))
    size = _integer(patches["size"], "patches.size", minimum=1)
    if not 1 <= _integer(patches["stride"], "patches.stride") <= size:
        raise ParameterError(f"parameter patches.stride must be in 1..patches.size ({size}), got {patches['stride']}")


def _check_augmentation(augmentation: Any) -> None:
    _keys(augmentation, "augmentation", ("copies", "seed"), optional=("recipe",))
    _integer(augmentation["copies"], "augmentation.copies", minimum=0)
    _integer(augmentation["seed"], "augmentation.seed")
    try:
        AugmentationRecipe.from_dict(augmentation.get("recipe"))
    except (TypeError, ValueError) as error:
        raise ParameterError(f"parameter augmentation.recipe: {error}") from error


def _check_clients(clients: Any) -> None:
    if not isinstance(clients, list):
        raise ParameterError(f"parameter clients must be a list of clients (name, source, supervision, ...), "
                             f"got {clients!r}")
    for i, client in enumerate(clients):
        if not isinstance(client, Mapping):
            raise ParameterError(f"parameter clients[{i}] must be a mapping (name, source, supervision, ...), "
                                 f"got {client!r}")
    if not clients:
        raise ParameterError("parameter clients is empty: configure at least one client")
    try:
        validate_clients(clients)
    except ClientConfigError as error:
        raise ParameterError(f"parameter {error}") from error


def _check_training(parameters: Mapping[str, Any], method: str, clients: list[dict] | None) -> None:
    """The method's settings as its ``run_settings`` node builds them; a problem is blamed on the
    active profile when the profile alone has it, on ``<method>.training`` otherwise."""
    profile, profiles = _value(parameters, "profile"), _value(parameters, "profiles")
    try:
        values = profile_values(profiles, profile, _value(parameters, f"{method}.training") or {}, method)
    except ValueError as error:
        raise ParameterError(str(error)) from None
    chosen = profiles[profile]
    if clients is not None:
        starting = [client for client in clients if client.get("join_round", 0) <= 1]
        full = METHODS[method].label_view == "full"
        values |= {"clients": [client["name"] for client in starting],
                   "supervision": ["pixel" if full else client["supervision"] for client in starting]}
    where = f"{method}.training"
    try:
        settings_for(values, where=where)
    except ValueError as error:
        try:
            RunSettings.from_mapping(chosen, where=f"profiles.{profile}")
        except ValueError as profile_error:
            raise ParameterError(f"parameter {profile_error}") from error
        raise ParameterError(f"parameter {where}: {str(error).removeprefix(f'{where}: ')}") from error
