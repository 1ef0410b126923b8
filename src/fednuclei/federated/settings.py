"""The settings of one federated run, and their form as a Flower run config.

Flower's run config (``[tool.flwr.app.config]`` in pyproject.toml, ``flwr run --run-config``,
``Context.run_config``, and the ``ConfigRecord`` the server sends with every message) is a flat
mapping of ``str``/``int``/``float``/``bool``. :class:`FederatedSettings` is the typed view of it:
keys are the field names with ``-`` for ``_`` (``local-epochs``), and tuples travel as
comma-separated strings (``clients = "breast,kidney"``).
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

# Where a run's files live, how much hardware it gets and how long it may go on do not change
# what it computes, so a run that differs only there resumes the same checkpoints.
_NOT_FINGERPRINTED = frozenset(
    {"num_server_rounds", "data_path", "checkpoint_dir", "gpu_fraction", "cpus_per_client", "round_timeout"}
)


@dataclass(frozen=True)
class FederatedSettings:
    """Everything a FedAvg run needs, server and client side.

    Attributes:
        clients: client (hospital) names; all of them train every round. In simulation the
            SuperNode with ``partition-id`` i plays ``clients[i]``.
        num_server_rounds: rounds in total; a resumed run continues up to this number.
        local_epochs: passes over a client's training patches per round.
        batch_size, lr: local Adam training.
        seed: seeds the initial model and each client's shuffling in each round.
        width, depth, groups: the :class:`~fednuclei.model.unet.UNet` architecture.
        train_roots: tile-set folders, relative to ``data_path``, whose ``<root>/<client>``
            subfolders hold a client's training patches (all of them are used).
        val_root: folder whose ``<val_root>/<client>`` holds the client's partition; its
            ``split == "val"`` tiles with pixel masks are the validation set.
        data_version: any string that changes when the data under the roots change (e.g. a hash
            of their ``tiles.json`` files). Only the fingerprint uses it: the server never sees
            the data, so without it new data in the same folders would resume the old run.
        data_path: base folder the roots resolve against. A deployed SuperNode overrides it
            with its own ``--node-config data-path=...``.
        checkpoint_dir: where the server keeps rounds, ``best.pt``, ``final.pt`` and
            ``history.json`` (in a subfolder named after :meth:`fingerprint`).
        infer_patch, infer_overlap: sliding-window inference for validation Dice.
        gpu_fraction: GPU share of one simulated client when CUDA is available.
        cpus_per_client: CPU cores of one simulated client.
        round_timeout: seconds the server waits for the replies of one round.
    """

    clients: tuple[str, ...] = ()
    num_server_rounds: int = 20
    local_epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    width: int = 16
    depth: int = 4
    groups: int = 8
    train_roots: tuple[str, ...] = ("data/05_model_input/supervised/client_patches",
                                    "data/05_model_input/supervised/augmented_patches")
    val_root: str = "data/04_feature/supervised/client_partitions"
    data_version: str = ""
    data_path: str = "."
    checkpoint_dir: str = "data/06_models/fedavg"
    infer_patch: int = 256
    infer_overlap: float = 0.25
    gpu_fraction: float = 0.25
    cpus_per_client: int = 1
    round_timeout: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("num_server_rounds", "local_epochs", "batch_size", "width", "depth", "groups", "infer_patch",
                     "cpus_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(set(self.clients)) != len(self.clients):
            raise ValueError(f"client names must be unique, got {list(self.clients)}")
        if not 0.0 <= self.gpu_fraction <= 1.0:
            raise ValueError(f"gpu_fraction must be in [0, 1], got {self.gpu_fraction}")

    def to_run_config(self) -> dict[str, str | int | float | bool]:
        """The flat Flower run config: ``-`` keys, tuples joined by commas."""
        return {
            name.replace("_", "-"): ",".join(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
        }

    @classmethod
    def from_run_config(cls, config: typing.Mapping[str, Any]) -> FederatedSettings:
        """Read a run config; missing keys keep their defaults.

        Raises:
            ValueError: an unknown key (a typo would otherwise be ignored silently) or a value
                of the wrong type.
        """
        hints = typing.get_type_hints(cls)
        types_by_key = {f.name.replace("_", "-"): (f.name, hints[f.name]) for f in fields(cls)}
        unknown = sorted(set(config) - set(types_by_key))
        if unknown:
            raise ValueError(f"unknown run config keys {unknown}; known: {sorted(types_by_key)}")
        values = {}
        for key, value in config.items():
            name, kind = types_by_key[key]
            values[name] = _parse(key, value, kind)
        return cls(**values)

    def fingerprint(self) -> str:
        """SHA-256 of the settings that decide what a round computes.

        Round count, paths, resources and timeout are left out: changing them keeps the
        checkpoints valid (more rounds continue a finished run).
        """
        relevant = {k: v for k, v in asdict(self).items() if k not in _NOT_FINGERPRINTED}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _parse(key: str, value: Any, kind: Any) -> Any:
    """Convert one run-config value to the field's type."""
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, str):
            raise ValueError(f"run config {key!r}: expected a comma-separated string, got {value!r}")
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # TOML and CLI overrides write 1 for 1.0
    if kind in (int, float, str, bool) and type(value) is kind:
        return value
    raise ValueError(f"run config {key!r}: expected {kind.__name__}, got {value!r}")
