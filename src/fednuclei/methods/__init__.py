"""Every training method, declared once in :data:`METHODS`.

A :class:`Method` says which label view of the client data it trains on, how it trains (a
client-side local training function run under the project's Flower strategy, or a trainer that
runs in one process), how the server weighs and picks clients each round, which global models it
keeps besides the main one, and its default settings. The pipelines, ``compare``, the ClientApp,
the ServerApp's strategy and the checkpoints all read this table: a new method is one entry here
plus its own module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from fednuclei.data.partition import LABEL_VIEWS
from fednuclei.data.tiles import Tile
from fednuclei.methods.aggregation import ClientReport, size_weights
from fednuclei.methods.baselines import train_centralized, train_local
from fednuclei.methods.client_data import ClientData
from fednuclei.methods.common import LocalResult, LocalRound
from fednuclei.methods.fedavg import fedavg_local_training
from fednuclei.methods.fedmix import fedmix_local_training, fedmix_weights
from fednuclei.methods.fedrgd import random_participants
from fednuclei.methods.fedst import check_warmup, fedst_local_training, fedst_warmup_participants, trust_share_weights
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

LocalTraining = Callable[[Sequence[UNet], ClientData, RunSettings, torch.device, LocalRound], LocalResult]
Trainer = Callable[[dict[str, list[Tile]], dict[str, list[Tile]], RunSettings, torch.device], tuple[Any, list[dict]]]
RoundWeights = Callable[[Sequence[ClientReport], RunSettings], dict[str, float]]
Participants = Callable[[RunSettings, int], list[str]]


def by_training_size(reports: Sequence[ClientReport], settings: RunSettings) -> dict[str, float]:
    """FedAvg's weights: :func:`~fednuclei.methods.aggregation.size_weights`."""
    return size_weights(reports)


def every_client(settings: RunSettings, server_round: int) -> list[str]:
    """Every client of the run takes part in every round."""
    return list(settings.clients)


@dataclass(frozen=True)
class Method:
    """One way of training a nuclei model across the clients.

    Attributes:
        name: the key in :data:`METHODS`, the pipeline's name and namespace.
        label_view: the client data it trains on: ``full`` (every client with pixel masks, the
            fully supervised references) or ``supervised`` (what each hospital really holds).
        local_training: a federated method's client side: ``(models, client data, settings,
            device, LocalRound) -> LocalResult``, training the received global models in place
            (the main one first, then ``extra_models``).
        trainer: a non-federated method: ``(training tiles by client, validation tiles by
            client, settings, device) -> (model or models by client, history rows)``.
        round_weights: ``(reports, settings) -> weights`` of the clients that trained in a round
            (see :mod:`fednuclei.methods.aggregation` for the conventions).
        participants: ``(settings, server round) -> client names`` that train in that round.
        extra_models: names of the global models it keeps besides the main one.
        defaults: its own defaults of :class:`~fednuclei.run_settings.RunSettings` fields.
        check: refuses settings the method cannot run, before any training.
        model_per_client: the trainer returns one model per client (``local``).
        central_dp: it may train under central differential privacy: one global model, every
            client training every round, and weights that no client's data decide (they become
            equal under DP). FedMix's weights follow the clients' losses and FedST's and
            FedRGD's their usable images, and FedMix keeps two models: they refuse it.

    Whether it may aggregate securely (``secure_aggregation``) follows from the entry: see
    :attr:`secure_aggregation_obstacle`.
    """

    name: str
    label_view: str
    local_training: LocalTraining | None = None
    trainer: Trainer | None = None
    round_weights: RoundWeights = by_training_size
    participants: Participants = every_client
    extra_models: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[RunSettings], None] | None = None
    model_per_client: bool = False
    central_dp: bool = False

    def __post_init__(self) -> None:
        if (self.local_training is None) == (self.trainer is None):
            raise ValueError(f"method {self.name}: give exactly one of local_training (federated) or trainer")
        if self.label_view not in LABEL_VIEWS:
            raise ValueError(f"method {self.name}: label_view must be one of {LABEL_VIEWS}, got {self.label_view!r}")
        unknown = sorted(set(self.defaults) - {f.name for f in fields(RunSettings)})
        if unknown:
            raise ValueError(f"method {self.name}: defaults name unknown settings {unknown}")

    @property
    def federated(self) -> bool:
        """Whether it trains on Flower (client-side local training, server-side aggregation)."""
        return self.local_training is not None

    @property
    def secure_aggregation_obstacle(self) -> str:
        """Why it cannot train with ``secure_aggregation``; empty when it can.

        SecAgg+ reveals to the server only the sum of the clients' weighted models, and their
        weights: enough for one global model averaged with FedAvg's weights (training images)
        over the clients of each round, and for nothing else (``fedavg``, ``fedavg_pixel``).
        """
        if not self.federated:
            return "it does not aggregate on Flower"
        if self.round_weights is not by_training_size:
            return ("its aggregation weights are not the clients' training images: they depend on what each client "
                    "reports (its loss, its supervision), so the server must see each client's reply")
        if self.extra_models:
            return f"it keeps extra global models {list(self.extra_models)}, which secure aggregation does not carry"
        if self.participants is not every_client:
            return "it picks each round's participants itself"
        return ""


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("local", "full", trainer=train_local, model_per_client=True),
    Method("centralized", "full", trainer=train_centralized),
    Method("fedavg", "full", local_training=fedavg_local_training, central_dp=True),
    # FedAvg on what the hospitals hold: clients without masks train nothing and get weight 0.
    Method("fedavg_pixel", "supervised", local_training=fedavg_local_training),
    Method("fedmix", "supervised", local_training=fedmix_local_training, extra_models=("model_2",),
           round_weights=lambda reports, s: fedmix_weights(reports, lam=s.lam, beta=s.beta)),
    Method("fedst", "supervised", local_training=fedst_local_training, check=check_warmup,
           round_weights=lambda reports, s: trust_share_weights(reports, s.pixel_share),
           participants=lambda s, k: fedst_warmup_participants(s.client_supervision, k, s.warmup_rounds)),
    Method("fedrgd", "supervised", local_training=fedst_local_training, defaults={"pixel_share": 0.5},
           round_weights=lambda reports, s: trust_share_weights(reports, s.pixel_share),
           participants=lambda s, k: random_participants(list(s.clients), s.participation, s.seed, k)),
)}


def method_of(name: str) -> Method:
    """The method called ``name``.

    Raises:
        ValueError: no such method, listing the known ones.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; use one of {list(METHODS)}")
    return METHODS[name]


def profile_values(profiles: Any, profile: str, training: Any, method: str) -> dict[str, Any]:
    """A method's run settings values before its clients and data: the compute profile
    ``profile`` of ``profiles``, the method's own parameters ``training`` over it, and its name.

    Raises:
        ValueError: ``profile`` is not one of ``profiles``, or a part is not a mapping, named by
            its parameter key.
    """
    if not isinstance(profiles, Mapping) or profile not in profiles:
        known = sorted(profiles) if isinstance(profiles, Mapping) else profiles
        raise ValueError(f"parameter profile: {profile!r} is not one of the compute profiles {known!r}")
    for key, value in ((f"profiles.{profile}", profiles[profile]), (f"{method}.training", training)):
        if not isinstance(value, Mapping):
            raise ValueError(f"parameter {key} must be a mapping of run settings, got {value!r}")
    return {**profiles[profile], **training, "method": method}


def settings_for(values: Mapping[str, Any], where: str = "settings") -> RunSettings:
    """The settings of a run of ``values["method"]`` (default ``fedavg``): the method's own
    defaults, overridden by ``values``, checked by the settings and by the method.

    Args:
        values: :class:`~fednuclei.run_settings.RunSettings` fields and plain values.
        where: names the source in errors (a file, a parameter namespace).
    """
    method = method_of(values.get("method", RunSettings.method))
    settings = RunSettings.from_mapping({**method.defaults, **values}, where)
    if method.check is not None:
        method.check(settings)
    if settings.dp_noise_multiplier > 0:
        _check_central_dp(method, settings, where)
    if settings.secure_aggregation:
        _check_secure_aggregation(method, settings, where)
    return settings


def _check_central_dp(method: Method, settings: RunSettings, where: str) -> None:
    """Refuse central DP where its noise would not cover the aggregate (see ``Method.central_dp``)."""
    supported = [m.name for m in METHODS.values() if m.central_dp]
    if not method.central_dp:
        raise ValueError(f"{where}: method {method.name} cannot train under central DP (dp_noise_multiplier > 0): "
                         f"its aggregation weights or models depend on the clients' data; methods that can: "
                         f"{supported}")
    if any(k > settings.first_round for k in settings.join_rounds):
        raise ValueError(f"{where}: central DP assumes every client trains every round of a run; join_rounds "
                         f"{list(settings.join_rounds)} add clients after its first round {settings.first_round}")


def _check_secure_aggregation(method: Method, settings: RunSettings, where: str) -> None:
    """Refuse secure aggregation where the server would need more than the clients' weighted mean."""
    if method.secure_aggregation_obstacle:
        supported = [m.name for m in METHODS.values() if not m.secure_aggregation_obstacle]
        raise ValueError(f"{where}: method {method.name} cannot use secure_aggregation: "
                         f"{method.secure_aggregation_obstacle}; methods that can: {supported}")
    if settings.dp_noise_multiplier > 0:
        raise ValueError(f"{where}: secure_aggregation and central DP (dp_noise_multiplier > 0) exclude each other: "
                         "central DP clips each client's update on the server, which secure aggregation hides from it")
    if settings.proximal_mu > 0:
        raise ValueError(f"{where}: secure_aggregation does not carry FedProx's reference models; set proximal_mu = 0")
    starters = [name for name, k in settings.client_join_rounds.items() if k <= settings.first_round]
    if len(starters) < 2:
        raise ValueError(f"{where}: secure_aggregation needs at least 2 clients training from round "
                         f"{settings.first_round} (SecAgg+ masks each client's model with the others'); got {starters}")
