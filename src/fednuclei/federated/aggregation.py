"""Per-round client weights and participation of FedMix, FedST and FedRGD, as pure functions.

The Flower strategies call these with what the clients reported; nothing here knows Flower,
torch or Kedro. Conventions shared by the weight functions:

* a client *trained* this round when it had at least one usable image (``usable_images > 0``);
* the result maps every reported client, in report order, to its weight: the trained ones share
  1, the others get 0.0;
* when no client trained the result is ``{}``: the caller keeps the global models as they were.

See ``DESIGN.md`` ("Methods") for the algorithms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fednuclei.data.tiles import SUPERVISION_LEVELS

WEIGHT_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ClientReport:
    """What one client reported after a round's local training.

    Attributes:
        name: the client's name, unique within a round.
        supervision: its label level, one of ``SUPERVISION_LEVELS`` (pixel, bbox, points, none).
        usable_images: images it trained on, >= 0: all its training images for a ``pixel``
            client, the images selected this round otherwise (0: it did not train).
        loss: its last local training loss, >= 0; NaN when it did not train.
    """

    name: str
    supervision: str
    usable_images: int
    loss: float

    def __post_init__(self):
        if self.supervision not in SUPERVISION_LEVELS:
            raise ValueError(f"client {self.name!r}: unknown supervision {self.supervision!r}; "
                             f"use one of {list(SUPERVISION_LEVELS)}")
        if self.usable_images < 0:
            raise ValueError(f"client {self.name!r}: usable_images must be >= 0, got {self.usable_images}")

    @property
    def trained(self) -> bool:
        """Whether the client trained this round (it had a usable image)."""
        return self.usable_images > 0


def fedmix_weights(reports: Sequence[ClientReport], lam: float = 10.0, beta: float = 3.0) -> dict[str, float]:
    """FedMix's adaptive aggregation weights (Wicaksana et al., IEEE TMI 2023).

    Over the clients that trained: ``d_i = usable_i / sum usable``,
    ``s_i = loss_i**beta / sum_j loss_j**beta`` and ``w_i`` proportional to ``d_i + lam * s_i``,
    normalised to sum 1. Clients with a higher loss get more weight as ``lam`` grows; ``lam = 0``
    is plain size weighting. When every trained client's loss is 0 (with ``beta > 0``), ``s`` is
    0/0: it is taken uniform, the limit of equal losses going to 0.

    Args:
        reports: one per client of the round, unique names.
        lam: weight of the loss term, >= 0.
        beta: loss exponent, >= 0 (0 makes ``s`` uniform).

    Returns:
        name -> weight in [0, 1] for every reported client (0 for those that did not train), or
        ``{}`` when no client trained (the global models then stay as they were).

    Raises:
        ValueError: ``lam`` or ``beta`` negative or not finite, duplicate names, or a trained
            client whose loss is not finite and >= 0.
    """
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    trained = _trained(reports)
    if not trained:
        return {}
    for report in trained:
        if not (math.isfinite(report.loss) and report.loss >= 0):
            raise ValueError(f"client {report.name!r} trained but reported loss {report.loss}; "
                             "need a finite loss >= 0")
    sizes = np.array([r.usable_images for r in trained], dtype=np.float64)
    losses = np.array([r.loss for r in trained], dtype=np.float64)
    d = sizes / sizes.sum()
    top = losses.max()
    if top == 0:
        s = np.full(len(trained), 1.0 / len(trained))
    else:
        # Scaling by the largest loss leaves s unchanged and keeps loss**beta from overflowing.
        powered = (losses / top) ** beta
        s = powered / powered.sum()
    w = d + lam * s
    return _spread(reports, {r.name: float(v) for r, v in zip(trained, w / w.sum())})


def trust_share_weights(reports: Sequence[ClientReport], pixel_share: float) -> dict[str, float]:
    """FedST/FedRGD aggregation weights: pixel-labelled clients keep a fixed trust share.

    Among the clients that trained, the ``pixel`` ones together get ``pixel_share`` and split it
    by usable images; the others (bbox, points, none) split ``1 - pixel_share`` the same way. If
    only one of the two kinds trained, it gets everything: a share with nobody to hold it would
    leave the weights summing to less than 1.

    Args:
        reports: one per participating client of the round, unique names.
        pixel_share: the pixel clients' share, in [0, 1] (0.9 for FedST, 0.5 for FedRGD).

    Returns:
        name -> weight in [0, 1] for every reported client (0 for those that did not train), or
        ``{}`` when no client trained.

    Raises:
        ValueError: ``pixel_share`` outside [0, 1] or duplicate names.
    """
    if not 0 <= pixel_share <= 1:
        raise ValueError(f"pixel_share must be in [0, 1], got {pixel_share}")
    trained = _trained(reports)
    pixel = [r for r in trained if r.supervision == "pixel"]
    weak = [r for r in trained if r.supervision != "pixel"]
    if not pixel or not weak:
        return _spread(reports, _by_size(trained, 1.0))
    return _spread(reports, _by_size(pixel, pixel_share) | _by_size(weak, 1.0 - pixel_share))


def weighted_average(arrays_by_client: Mapping[str, Sequence[np.ndarray]],
                     weights: Mapping[str, float]) -> list[np.ndarray]:
    """The weighted mean of each model array over the clients.

    Floating arrays are averaged in float64 and cast back to their dtype. Integer and boolean
    arrays (counters such as a BatchNorm state dict's int64 ``num_batches_tracked``) are not
    averaged: a mean count means nothing and would be truncated, so they are copied from the
    client with the highest weight (the first such in ``weights`` order on a tie).

    Args:
        arrays_by_client: name -> the client's arrays, same number, shapes and dtypes for all.
        weights: name -> weight >= 0, summing to 1 within 1e-6 (e.g. from :func:`fedmix_weights`).
            Clients with weight 0 are left out and may be absent from ``arrays_by_client``;
            clients absent from ``weights`` count as weight 0.

    Returns:
        One new array per position, with that position's shape and dtype.

    Raises:
        ValueError: a negative weight, weights not summing to 1, a weighted client without
            arrays, or clients whose arrays differ in number, shape or dtype.
    """
    for name, weight in weights.items():
        if not weight >= 0:
            raise ValueError(f"client {name!r}: weight must be >= 0, got {weight}")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"weights must sum to 1 (within {WEIGHT_SUM_TOLERANCE}), got {total}")
    used = {name: weight for name, weight in weights.items() if weight > 0}
    missing = [name for name in used if name not in arrays_by_client]
    if missing:
        raise ValueError(f"clients {missing} have weight but no arrays")
    names = list(used)
    reference = [np.asarray(a) for a in arrays_by_client[names[0]]]
    for name in names[1:]:
        arrays = arrays_by_client[name]
        if len(arrays) != len(reference):
            raise ValueError(f"client {name!r} sent {len(arrays)} arrays, client {names[0]!r} sent {len(reference)}")
        for i, (array, ref) in enumerate(zip(arrays, reference)):
            if np.shape(array) != ref.shape or np.asarray(array).dtype != ref.dtype:
                raise ValueError(f"array {i}: client {name!r} has {np.shape(array)} {np.asarray(array).dtype}, "
                                 f"client {names[0]!r} has {ref.shape} {ref.dtype}")
    top = max(names, key=lambda name: used[name])  # max keeps the first of equal weights
    averaged = []
    for i, ref in enumerate(reference):
        if np.issubdtype(ref.dtype, np.inexact):
            mean = sum(used[name] * np.asarray(arrays_by_client[name][i], dtype=np.float64) for name in names)
            averaged.append(np.asarray(mean).astype(ref.dtype))
        else:
            averaged.append(np.array(arrays_by_client[top][i], copy=True))
    return averaged


def fedst_warmup_participants(clients: Mapping[str, str], server_round: int, warmup_rounds: int) -> list[str]:
    """FedST's participants of a round: pixel clients only during warm-up, everyone after.

    Args:
        clients: name -> supervision level, in the order the run lists its clients.
        server_round: the round, >= 1.
        warmup_rounds: rounds 1..warmup_rounds are warm-up, >= 0.

    Returns:
        The participating names, in the order of ``clients`` (stable across rounds).

    Raises:
        ValueError: ``server_round`` < 1, ``warmup_rounds`` < 0, an unknown supervision level, or
            a warm-up with no pixel client (nobody could train in it).
    """
    if server_round < 1:
        raise ValueError(f"server_round counts from 1, got {server_round}")
    if warmup_rounds < 0:
        raise ValueError(f"warmup_rounds must be >= 0, got {warmup_rounds}")
    for name, supervision in clients.items():
        if supervision not in SUPERVISION_LEVELS:
            raise ValueError(f"client {name!r}: unknown supervision {supervision!r}; "
                             f"use one of {list(SUPERVISION_LEVELS)}")
    pixel = [name for name, supervision in clients.items() if supervision == "pixel"]
    if warmup_rounds > 0 and not pixel:
        raise ValueError("FedST warm-up needs at least one pixel client; set warmup_rounds to 0 otherwise")
    return pixel if server_round <= warmup_rounds else list(clients)


def random_participants(clients: Sequence[str], fraction: float, seed: int, server_round: int) -> list[str]:
    """FedRGD's seeded random participation of a round.

    ``max(1, round(fraction * n))`` clients (Python's round: halves go to even) are drawn without
    replacement with ``numpy.random.default_rng([seed, server_round])``: a round's draw depends
    only on the seed and the round, so it is the same whatever rounds were drawn before (a
    resumed run picks the clients the interrupted one would have).

    Args:
        clients: the n >= 1 client names, unique.
        fraction: share of clients per round, in (0, 1] (1 selects everyone).
        seed: the run's seed, >= 0.
        server_round: the round, >= 0.

    Returns:
        The drawn names, in the order of ``clients``.

    Raises:
        ValueError: no clients, duplicate names, ``fraction`` outside (0, 1], or a negative
            seed or round.
    """
    if not clients:
        raise ValueError("no clients to draw from")
    if len(set(clients)) != len(clients):
        raise ValueError(f"duplicate client names in {list(clients)}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if seed < 0 or server_round < 0:
        raise ValueError(f"seed and server_round must be >= 0, got {seed} and {server_round}")
    count = max(1, round(fraction * len(clients)))
    rng = np.random.default_rng([seed, server_round])
    drawn = np.sort(rng.choice(len(clients), size=count, replace=False))
    return [clients[i] for i in drawn]


def _trained(reports: Sequence[ClientReport]) -> list[ClientReport]:
    """The reports of clients that trained, in order; rejects duplicate names."""
    names = [r.name for r in reports]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate client names in {names}")
    return [r for r in reports if r.trained]


def _by_size(reports: Sequence[ClientReport], share: float) -> dict[str, float]:
    """``share`` split among ``reports`` in proportion to their usable images (all > 0)."""
    total = sum(r.usable_images for r in reports)
    return {r.name: share * r.usable_images / total for r in reports}


def _spread(reports: Sequence[ClientReport], weights: dict[str, float]) -> dict[str, float]:
    """``weights`` over every reported client, in report order, 0.0 for those not in it;
    ``{}`` when ``weights`` is empty (no client trained)."""
    if not weights:
        return {}
    return {r.name: weights.get(r.name, 0.0) for r in reports}
