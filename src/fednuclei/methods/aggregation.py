"""What every method's aggregation shares: client reports, FedAvg's size weights, the weighted mean.

The Flower strategy calls a method's weight function with what the clients reported; nothing
here knows Flower, torch or Kedro. Conventions shared by every weight function (FedAvg's
:func:`size_weights`, :func:`~fednuclei.methods.fedmix.fedmix_weights`,
:func:`~fednuclei.methods.fedst.trust_share_weights`):

* a client *trained* this round when it had at least one usable image (``usable_images > 0``);
* the result maps every reported client, in report order, to its weight: the trained ones share
  1, the others get 0.0;
* when no client trained the result is ``{}``: the caller keeps the global models as they were.

Under central differential privacy the strategy uses :func:`uniform_weights` instead.
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


def size_weights(reports: Sequence[ClientReport]) -> dict[str, float]:
    """FedAvg's weights: the clients that trained share 1 in proportion to their training images.

    Returns:
        name -> weight for every reported client (0 for those that did not train), or ``{}``
        when no client trained.

    Raises:
        ValueError: duplicate names.
    """
    trained = trained_reports(reports)
    return spread_over(reports, split_by_size(trained, 1.0))


def uniform_weights(reports: Sequence[ClientReport]) -> dict[str, float]:
    """Equal weights for the clients that trained (what central differential privacy's noise is
    calibrated to: no client's data decides its share).

    Raises:
        ValueError: duplicate names.
    """
    trained = trained_reports(reports)
    return spread_over(reports, {r.name: 1.0 / len(trained) for r in trained})


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


def trained_reports(reports: Sequence[ClientReport]) -> list[ClientReport]:
    """The reports of clients that trained, in order; rejects duplicate names."""
    names = [r.name for r in reports]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate client names in {names}")
    return [r for r in reports if r.trained]


def split_by_size(reports: Sequence[ClientReport], share: float) -> dict[str, float]:
    """``share`` split among ``reports`` in proportion to their usable images (all > 0)."""
    total = sum(r.usable_images for r in reports)
    return {r.name: share * r.usable_images / total for r in reports}


def spread_over(reports: Sequence[ClientReport], weights: dict[str, float]) -> dict[str, float]:
    """``weights`` over every reported client, in report order, 0.0 for those not in it;
    ``{}`` when ``weights`` is empty (no client trained)."""
    if not weights:
        return {}
    return {r.name: weights.get(r.name, 0.0) for r in reports}
