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
import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

from fednuclei.data.tiles import SUPERVISION_LEVELS

METHODS = ("fedavg", "fedmix", "fedst", "fedrgd")

# ``pixel_share`` left at this value takes the method's own default trust share.
METHOD_DEFAULT = -1.0
DEFAULT_PIXEL_SHARE = {"fedst": 0.9, "fedrgd": 0.5}

# Where a run's files live, how much hardware it gets and how long it may go on do not change
# what it computes, so a run that differs only there resumes the same checkpoints.
_NOT_FINGERPRINTED = frozenset(
    {"num_server_rounds", "data_path", "checkpoint_dir", "gpu_fraction", "cpus_per_client", "round_timeout"}
)


@dataclass(frozen=True)
class FederatedSettings:
    """Everything a federated run needs, server and client side.

    Attributes:
        clients: client (hospital) names. In simulation the SuperNode with ``partition-id`` i
            plays ``clients[i]``.
        method: the federated algorithm (see DESIGN.md, "Methods"): ``fedavg`` (every client
            trains every round on its pixel masks, size-weighted mean), ``fedmix`` (two models,
            cross pseudo-labels on weak clients, adaptive weights), ``fedst`` (self-training after
            pixel-only warm-up rounds, trust-share weights) or ``fedrgd`` (FedST's local training,
            seeded random participation, trust-share weights).
        supervision: each client's label level, aligned with ``clients``: ``pixel``, ``bbox``,
            ``points`` or ``none``. Empty: every client is ``pixel``. FedAvg ignores it (it trains
            on whichever patches carry masks).
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
        tau: (FedMix, Wicaksana et al., IEEE TMI 2023) minimum Dice between the two models'
            binarised predictions for an image of a weak client to be pseudo-labelled, in [0, 1].
        lam, beta: (FedMix) adaptive aggregation, ``w_i ~ d_i + lam * s_i`` with
            ``s_i ~ loss_i ** beta``; both >= 0.
        min_box_fill, min_covered_boxes: (FedMix) ``bbox`` clients keep an image when at least
            ``min_covered_boxes`` of its boxes are filled to ``min_box_fill`` by the pseudo-label.
        warmup_rounds: FedST's first rounds in which only pixel clients train and count, >= 0.
        pixel_share: (FedST, FedRGD) aggregate share held by the pixel clients among those that
            trained, in [0, 1]. The default ``-1`` (:data:`METHOD_DEFAULT`) means the method's
            own default, 0.9 for FedST and 0.5 for FedRGD (see :attr:`trust_share`); an explicit
            value overrides it. Not used by FedAvg and FedMix.
        confidence_high, confidence_low: (FedST, FedRGD) self-training targets are the pixels the
            current model predicts above ``confidence_high`` (foreground) or below
            ``confidence_low`` (background); ``0 <= low <= high <= 1``.
        gamma_low, gamma_high: (FedST, FedRGD) range of the gamma perturbation of the
            self-training input, ``0 < low <= high``.
        participation: FedRGD's fraction of clients drawn each round, in (0, 1].
    """

    clients: tuple[str, ...] = ()
    method: str = "fedavg"
    supervision: tuple[str, ...] = ()
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
    tau: float = 0.9
    lam: float = 10.0
    beta: float = 3.0
    min_box_fill: float = 0.5
    min_covered_boxes: float = 0.8
    warmup_rounds: int = 2
    pixel_share: float = METHOD_DEFAULT
    confidence_high: float = 0.9
    confidence_low: float = 0.1
    gamma_low: float = 0.7
    gamma_high: float = 1.5
    participation: float = 0.5

    def __post_init__(self) -> None:
        for name in ("num_server_rounds", "local_epochs", "batch_size", "width", "depth", "groups", "infer_patch",
                     "cpus_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(set(self.clients)) != len(self.clients):
            raise ValueError(f"client names must be unique, got {list(self.clients)}")
        if not 0.0 <= self.gpu_fraction <= 1.0:
            raise ValueError(f"gpu_fraction must be in [0, 1], got {self.gpu_fraction}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {list(METHODS)}")
        if self.supervision:
            if len(self.supervision) != len(self.clients):
                raise ValueError(f"supervision names {len(self.supervision)} levels for {len(self.clients)} clients "
                                 f"{list(self.clients)}: give one per client, in the same order (or none: all pixel)")
            unknown = sorted(set(self.supervision) - set(SUPERVISION_LEVELS))
            if unknown:
                raise ValueError(f"unknown supervision levels {unknown}; use {list(SUPERVISION_LEVELS)}")
        for name in ("tau", "min_box_fill", "min_covered_boxes", "confidence_high", "confidence_low"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("lam", "beta"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.warmup_rounds < 0:
            raise ValueError(f"warmup_rounds must be >= 0, got {self.warmup_rounds}")
        if self.pixel_share != METHOD_DEFAULT and not 0.0 <= self.pixel_share <= 1.0:
            raise ValueError(f"pixel_share must be in [0, 1] (or {METHOD_DEFAULT}: the method's default), "
                             f"got {self.pixel_share}")
        if not self.confidence_low <= self.confidence_high:
            raise ValueError(f"need confidence_low <= confidence_high, got {self.confidence_low} > "
                             f"{self.confidence_high}")
        if not 0.0 < self.gamma_low <= self.gamma_high:
            raise ValueError(f"need 0 < gamma_low <= gamma_high, got {self.gamma_low}, {self.gamma_high}")
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"participation must be in (0, 1], got {self.participation}")
        if (self.method == "fedst" and self.warmup_rounds > 0 and self.clients
                and "pixel" not in self.client_supervision.values()):
            raise ValueError("FedST warm-up needs at least one pixel client; set warmup_rounds to 0 otherwise")

    @property
    def client_supervision(self) -> dict[str, str]:
        """Client name -> supervision level, in the order of ``clients`` (all ``pixel`` when
        ``supervision`` is empty)."""
        return dict(zip(self.clients, self.supervision or ("pixel",) * len(self.clients)))

    def supervision_of(self, client: str) -> str:
        """The supervision level of ``client``.

        Raises:
            ValueError: the run does not name that client.
        """
        levels = self.client_supervision
        if client not in levels:
            raise ValueError(f"client {client!r} is not one of the run's clients {list(self.clients)}")
        return levels[client]

    @property
    def trust_share(self) -> float:
        """The pixel clients' aggregate share FedST and FedRGD use: ``pixel_share``, or the
        method's default (FedST 0.9, FedRGD 0.5) when it is left at :data:`METHOD_DEFAULT`."""
        if self.pixel_share != METHOD_DEFAULT:
            return self.pixel_share
        return DEFAULT_PIXEL_SHARE.get(self.method, 0.9)

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
        checkpoints valid (more rounds continue a finished run). ``pixel_share`` counts by its
        resolved value (:attr:`trust_share`): the method's default and the same value written
        out compute the same run.
        """
        relevant = {k: v for k, v in asdict(self).items() if k not in _NOT_FINGERPRINTED}
        relevant["pixel_share"] = self.trust_share
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
