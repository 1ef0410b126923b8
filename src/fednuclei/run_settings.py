"""The settings of one method's run: every default and every range check, in one place.

:class:`RunSettings` configures every method, federated or not: the budget (rounds x local
epochs), the model, where the client data and checkpoints are, and the parameters of the
mixed-supervision methods. A method's own defaults (FedRGD's trust share, say) are declared with
the method in :mod:`fednuclei.methods`, which builds a method's settings with
:func:`fednuclei.methods.settings_for`. Kedro's YAML profiles and Flower's run config only
override; they are converted at their boundary (:mod:`fednuclei.federated.run_config` for Flower).
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from fednuclei.data.tiles import SUPERVISION_LEVELS

# Where a run's files live, how much hardware it gets and how long it may go on do not change
# what it computes, so a run that differs only there resumes the same checkpoints. Scoring after
# training and a later stage's length do not change the rounds either; the starting model counts
# by its content (initial_model_version), not by where it lies. Secure aggregation changes how the
# server forms the clients' mean, not the mean (up to a quantisation far below training noise).
_NOT_FINGERPRINTED = frozenset(
    {"num_server_rounds", "data_path", "checkpoint_dir", "gpu_fraction", "cpus_per_client", "round_timeout",
     "tta", "watershed", "foreground_threshold", "contour_threshold", "incremental_rounds", "initial_model", "quorum",
     "dp_delta", "secure_aggregation", "secure_max_images"}
)
_AT_LEAST_ONE = ("num_server_rounds", "local_epochs", "batch_size", "width", "depth", "groups", "infer_patch",
                 "cpus_per_client", "contour_width", "secure_max_images")
_CHOICES = {"lr_schedule": ("constant", "cosine"), "watershed": ("contour", "distance", "blend")}
_FRACTIONS = ("tau", "min_box_fill", "min_covered_boxes", "confidence_high", "confidence_low", "pixel_share",
              "gpu_fraction", "foreground_threshold", "contour_threshold")


@dataclass(frozen=True)
class RunSettings:
    """Everything a method's run needs, server and client side.

    Attributes:
        clients: client (hospital) names. In simulation the SuperNode with ``partition-id`` i
            plays ``clients[i]``.
        method: a name of :data:`fednuclei.methods.METHODS` (checked there, where methods are declared).
        supervision: each client's label level, aligned with ``clients``: ``pixel``, ``bbox``,
            ``points`` or ``none``. Empty: every client is ``pixel``.
        join_rounds: the global round from which each client trains, aligned with ``clients``
            (0 and 1: from the start). Empty: everyone from the start.
        num_server_rounds: the last global round; a resumed run continues up to this number.
            The non-federated methods train as many blocks of ``local_epochs`` epochs.
        first_round: the global round this run starts at: 1, or the round after the finished
            stage an incremental run continues.
        initial_model: model file the run starts from (FedMix's second model lies beside it as
            ``<stem>.model_2.pt``); empty: a fresh initialisation from ``seed``.
        initial_model_version: a digest of ``initial_model``'s content, so that another starting
            model makes another run.
        incremental_rounds: rounds an incremental stage adds after ``num_server_rounds`` of the
            plan, for what is new (clients that join, tiles that arrived), >= 0.
        proximal_mu: FedProx strength towards the model the run started from (the pre-join
            model of an incremental stage): clients add ``mu / 2 * ||w - w_start||^2`` to their
            loss, >= 0. 0: no term.
        local_epochs: passes over a client's training patches per round.
        batch_size, lr: Adam training.
        seed: seeds the initial model and each client's shuffling in each round.
        width, depth, groups: the :class:`~fednuclei.model.unet.UNet` architecture.
        train_roots: tile-set folders, relative to ``data_path``, whose ``<root>/<client>``
            subfolders hold a client's training patches (all of them are used).
        val_roots: folders whose ``<root>/<client>`` subfolders hold the client's partition; their
            ``split == "val"`` tiles with pixel masks are the validation set.
        data_version: any string that changes when the data under the roots change (e.g. a hash
            of their ``tiles.json`` files). Only the fingerprint uses it: the server never sees
            the data, so without it new data in the same folders would resume the old run.
        data_path: base folder the roots resolve against. A deployed SuperNode overrides it
            with its own ``--node-config data-path=...``.
        checkpoint_dir: where the server keeps rounds, ``best.pt``, ``final.pt`` and
            ``history.json`` (in a subfolder named after :meth:`fingerprint`).
        lr_schedule: ``constant``, or ``cosine``: round r of R trains with
            ``lr * (1 + cos(pi * (r - 1) / R)) / 2``.
        flip_rotate: flip and rotate every training patch by 90 degrees on the fly (each of the 8
            symmetries of the square equally likely), on top of the offline augmentation stage.
        contour_width: pixels of the contour target inside each nucleus, >= 1
            (:func:`~fednuclei.model.targets.segmentation_targets`).
        contour_weight: weight of the contour channel in the loss, the foreground's being 1, > 0.
        infer_patch, infer_overlap: sliding-window inference for validation and scoring.
        tta: average the predictions of the 8 flips and 90-degree rotations when scoring.
        watershed: how nuclei are split (:func:`~fednuclei.model.postprocess.instances_from_probabilities`):
            ``contour`` (markers are the cores the contour channel leaves), ``distance``
            (markers are peaks of the foreground's distance transform) or ``blend`` (peaks of
            the cores' distance transform).
        foreground_threshold, contour_threshold: probability thresholds of the watershed, in (0, 1).
        gpu_fraction: GPU share of one simulated client when CUDA is available, in [0, 1].
        cpus_per_client: CPU cores of one simulated client.
        round_timeout: seconds the server waits at most for the replies of one round; once rounds
            have been timed, a stage waits :data:`~fednuclei.federated.pacing.WAIT_FACTOR` times its
            longest so far (at least a minute), so a hung client is cut sooner.
        quorum: fraction of the clients asked in a round that must complete it (train, validate)
            for the run to go on, in (0, 1]; the others' failures are recorded. 1: every client.
        dp_noise_multiplier: central differential privacy (FedAvg only): Gaussian noise of
            standard deviation ``dp_noise_multiplier * dp_clipping_norm / clients`` on the
            average of the clients' updates, each clipped to L2 norm ``dp_clipping_norm``; the
            clients' weights are equal. 0: off.
        dp_clipping_norm: the L2 bound of one client's update under central DP, > 0 when it is on.
        dp_delta: the delta at which the privacy spent is reported as epsilon, in (0, 1).
        secure_aggregation: the server learns only the clients' example-weighted mean model, not
            any client's own (Flower's SecAgg+, :mod:`fednuclei.federated.secure_aggregation`).
            Only for the methods whose aggregation is such a mean (``Method.secure_aggregation_obstacle``).
        secure_max_images: under secure aggregation, the most training images any client has,
            >= 1. SecAgg+ quantises each client's weight as a share of it: a bound near the
            largest client's count keeps the mean exact, a loose one costs precision, and a
            client above it stops the round.
        tau: (FedMix, Wicaksana et al., IEEE TMI 2023) minimum Dice between the two models'
            binarised predictions for an image of a weak client to be pseudo-labelled, in [0, 1].
        lam, beta: (FedMix) adaptive aggregation, ``w_i ~ d_i + lam * s_i`` with
            ``s_i ~ loss_i ** beta``; both >= 0.
        min_box_fill, min_covered_boxes: (FedMix) ``bbox`` clients keep an image when at least
            ``min_covered_boxes`` of its boxes are filled to ``min_box_fill`` by the pseudo-label.
        warmup_rounds: (FedST) first rounds in which only pixel clients train and count, >= 0.
        pixel_share: (FedST, FedRGD) aggregate share held by the pixel clients among those that
            trained, in [0, 1].
        confidence_high, confidence_low: (FedST, FedRGD) self-training targets are the pixels the
            current model predicts above ``confidence_high`` (foreground) or below
            ``confidence_low`` (background); ``0 <= low <= high <= 1``.
        gamma_low, gamma_high: (FedST, FedRGD) range of the gamma perturbation of the
            self-training input, ``0 < low <= high``.
        participation: (FedRGD) fraction of clients drawn each round, in (0, 1].
    """

    clients: tuple[str, ...] = ()
    method: str = "fedavg"
    supervision: tuple[str, ...] = ()
    join_rounds: tuple[int, ...] = ()
    num_server_rounds: int = 20
    first_round: int = 1
    initial_model: str = ""
    initial_model_version: str = ""
    incremental_rounds: int = 2
    proximal_mu: float = 0.0
    local_epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    width: int = 16
    depth: int = 4
    groups: int = 8
    train_roots: tuple[str, ...] = ("data/05_model_input/supervised/client_patches",
                                    "data/05_model_input/supervised/augmented_patches")
    val_roots: tuple[str, ...] = ("data/04_feature/supervised/client_partitions",)
    data_version: str = ""
    data_path: str = "."
    checkpoint_dir: str = "checkpoints"
    lr_schedule: str = "constant"
    flip_rotate: bool = False
    contour_width: int = 1
    contour_weight: float = 1.0
    infer_patch: int = 256
    infer_overlap: float = 0.25
    # The post-processing defaults won on MoNuSeg validation tiles (benchmarks/ablation.py).
    tta: bool = True
    watershed: str = "blend"
    foreground_threshold: float = 0.5
    contour_threshold: float = 0.5
    gpu_fraction: float = 0.25
    cpus_per_client: int = 1
    round_timeout: float = 3600.0
    quorum: float = 1.0
    dp_noise_multiplier: float = 0.0
    dp_clipping_norm: float = 0.0
    dp_delta: float = 1e-5
    secure_aggregation: bool = False
    secure_max_images: int = 10_000
    tau: float = 0.9
    lam: float = 10.0
    beta: float = 3.0
    min_box_fill: float = 0.5
    min_covered_boxes: float = 0.8
    warmup_rounds: int = 1
    pixel_share: float = 0.9
    confidence_high: float = 0.9
    confidence_low: float = 0.1
    gamma_low: float = 0.7
    gamma_high: float = 1.5
    participation: float = 0.5

    def __post_init__(self) -> None:
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in _FRACTIONS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        if not (math.isfinite(self.contour_weight) and self.contour_weight > 0):
            raise ValueError(f"contour_weight must be finite and > 0, got {self.contour_weight}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        if not 0.0 <= self.infer_overlap < 1.0:
            raise ValueError(f"infer_overlap must be in [0, 1), got {self.infer_overlap}")
        if len(set(self.clients)) != len(self.clients):
            raise ValueError(f"client names must be unique, got {list(self.clients)}")
        if self.join_rounds and (len(self.join_rounds) != len(self.clients) or min(self.join_rounds) < 0):
            raise ValueError(f"join_rounds must give one round >= 0 per client, in the order of {list(self.clients)}; "
                             f"got {list(self.join_rounds)}")
        if not 1 <= self.first_round <= self.num_server_rounds + 1:
            raise ValueError(f"first_round must be in 1..num_server_rounds + 1 = {self.num_server_rounds + 1}, "
                             f"got {self.first_round}")
        if self.incremental_rounds < 0:
            raise ValueError(f"incremental_rounds must be >= 0, got {self.incremental_rounds}")
        if not (math.isfinite(self.proximal_mu) and self.proximal_mu >= 0):
            raise ValueError(f"proximal_mu must be finite and >= 0, got {self.proximal_mu}")
        if self.supervision:
            if len(self.supervision) != len(self.clients):
                raise ValueError(f"supervision names {len(self.supervision)} levels for {len(self.clients)} clients "
                                 f"{list(self.clients)}: give one per client, in the same order (or none: all pixel)")
            unknown = sorted(set(self.supervision) - set(SUPERVISION_LEVELS))
            if unknown:
                raise ValueError(f"unknown supervision levels {unknown}; use {list(SUPERVISION_LEVELS)}")
        for name in ("lam", "beta"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.warmup_rounds < 0:
            raise ValueError(f"warmup_rounds must be >= 0, got {self.warmup_rounds}")
        if not self.confidence_low <= self.confidence_high:
            raise ValueError(f"need confidence_low <= confidence_high, got {self.confidence_low} > "
                             f"{self.confidence_high}")
        if not 0.0 < self.gamma_low <= self.gamma_high:
            raise ValueError(f"need 0 < gamma_low <= gamma_high, got {self.gamma_low}, {self.gamma_high}")
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"participation must be in (0, 1], got {self.participation}")
        if not 0.0 < self.quorum <= 1.0:
            raise ValueError(f"quorum must be in (0, 1], got {self.quorum}")
        self._check_privacy()

    def _check_privacy(self) -> None:
        for name in ("dp_noise_multiplier", "dp_clipping_norm"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.dp_noise_multiplier > 0 and self.dp_clipping_norm == 0:
            raise ValueError("central DP (dp_noise_multiplier > 0) needs dp_clipping_norm > 0, the bound of one "
                             "client's update")
        if not 0.0 < self.dp_delta < 1.0:
            raise ValueError(f"dp_delta must be in (0, 1), got {self.dp_delta}")

    @property
    def client_supervision(self) -> dict[str, str]:
        """Client name -> supervision level, in the order of ``clients`` (all ``pixel`` when
        ``supervision`` is empty)."""
        return dict(zip(self.clients, self.supervision or ("pixel",) * len(self.clients)))

    @property
    def client_join_rounds(self) -> dict[str, int]:
        """Client name -> the first global round it trains in (1 for those there from the start)."""
        return dict(zip(self.clients, (max(k, 1) for k in self.join_rounds or (1,) * len(self.clients))))

    def supervision_of(self, client: str) -> str:
        """The supervision level of ``client``.

        Raises:
            ValueError: the run does not name that client.
        """
        levels = self.client_supervision
        if client not in levels:
            raise ValueError(f"client {client!r} is not one of the run's clients {list(self.clients)}")
        return levels[client]

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), for JSON and logs; :meth:`from_mapping` reads them back."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "settings") -> RunSettings:
        """Settings from field names and plain values (lists for tuples); missing keys keep their
        defaults.

        Args:
            where: names the source in errors (a file, a parameter namespace).

        Raises:
            ValueError: an unknown key (a typo would otherwise be ignored silently), a value of the
                wrong type, or a value out of range, each named.
        """
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown settings {unknown}; known: {sorted(known)}")
        try:
            return cls(**{name: _typed(name, value, hints[name]) for name, value in values.items()})
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from error

    def fingerprint(self) -> str:
        """SHA-256 of the settings that decide what a round computes.

        Round count, paths, resources, timeout and the scoring settings are left out: changing
        them keeps the checkpoints valid (more rounds continue a finished run), except that a
        cosine learning rate decays over the round count, so there it counts.
        """
        ignored = _NOT_FINGERPRINTED - ({"num_server_rounds"} if self.lr_schedule == "cosine" else set())
        relevant = {k: v for k, v in asdict(self).items() if k not in ignored}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _typed(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the field's type: a list or tuple of the items' type for a tuple field, an int
    for a float field; anything else must have the field's type already."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, (list, tuple)) and all(type(v) is item for v in value):
            return tuple(value)
        raise ValueError(f"{name}: expected a list of {'strings' if item is str else item.__name__ + 's'}, "
                         f"got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and type(value) is kind:
        return value
    raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}")
