"""The model file format: a fednuclei U-Net as a ``.pt`` file, and weights in and out of models as numpy.

A file holds ``{"format": "fednuclei-unet", "config": ..., "state_dict": ...}``: the architecture
and plain extras (method, round, validation Dice) beside the weights, readable with
``torch.load(weights_only=True)``, so loading a file never runs code from it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from fednuclei.atomic import atomic_file
from fednuclei.model.unet import UNet

MODEL_FORMAT = "fednuclei-unet"
_CONFIG_KEYS = ("in_channels", "out_channels", "width", "depth", "groups")


def state_to_arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's state dict as CPU numpy copies, in state-dict order (safe to keep while training on)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def arrays_to_state(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load numpy arrays from :func:`state_to_arrays` into ``model`` in place (onto its device).

    Raises:
        ValueError: names missing or unexpected, or a shape that differs.
    """
    state = model.state_dict()
    missing, unexpected = sorted(set(state) - set(arrays)), sorted(set(arrays) - set(state))
    if missing or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tuple(np.shape(arrays[name])) != tuple(tensor.shape):
            raise ValueError(
                f"weight {name} has shape {np.shape(arrays[name])}, the model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict({name: torch.as_tensor(np.asarray(arrays[name])) for name in state})


def _check_plain(value, where: str) -> None:
    """Refuse values ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"model config key {key!r} in {where} must be a string")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ValueError(f"model config value {where} is a {type(value).__name__}; only plain Python values are stored")


def save_model(model: UNet, path: str | os.PathLike, config: dict | None = None) -> None:
    """Write ``model`` to a ``.pt`` file, atomically.

    The file holds ``{"format": "fednuclei-unet", "config": ..., "state_dict": ...}`` where config is
    the architecture (``in_channels, out_channels, width, depth, groups``, from ``model.config``)
    plus any other plain entries of ``config`` (e.g. method, round); entries of ``config`` that
    name an architecture key must agree with the model.
    """
    extra = dict(config or {})
    _check_plain(extra, "config")
    for key in _CONFIG_KEYS:
        if key in extra and extra[key] != model.config[key]:
            raise ValueError(f"config {key}={extra[key]!r} contradicts the model's {key}={model.config[key]!r}")
    payload = {
        "format": MODEL_FORMAT,
        "config": {**extra, **model.config},
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    with atomic_file(path) as staging:
        torch.save(payload, staging)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """Read a file written by :func:`save_model`.

    Returns:
        the UNet on ``device`` in eval mode, and the stored config (architecture plus extras).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not a torch file, is a plain state dict, has another
            ``format``, or its config or weights do not make a UNet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for foreign files
        raise ValueError(f"{path} is not a fednuclei model file: torch cannot load it ({error})") from error
    if not isinstance(payload, dict) or "format" not in payload:
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise ValueError(f"{path} holds a plain state dict, not a {MODEL_FORMAT} file; save with save_model")
        kind = type(payload).__name__
        raise ValueError(f"{path} is not a {MODEL_FORMAT} file: it holds a {kind} without a 'format' key")
    if payload["format"] != MODEL_FORMAT:
        raise ValueError(f"{path} has format {payload['format']!r}, expected {MODEL_FORMAT!r}")
    config = payload.get("config")
    if not isinstance(config, dict) or any(key not in config for key in _CONFIG_KEYS) or "state_dict" not in payload:
        raise ValueError(f"{path} lacks a config with {list(_CONFIG_KEYS)} or a state_dict")
    try:
        model = UNet(**{key: config[key] for key in _CONFIG_KEYS})
        arrays_to_state(model, {name: tensor.numpy() for name, tensor in payload["state_dict"].items()})
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: its weights do not make a UNet: {error}") from error
    return model.to(device).eval(), config
