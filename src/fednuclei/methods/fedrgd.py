"""FedRGD: FedST's local training with randomised participation.

The method is named in the literature without a precise specification; this project defines it
as: each round a seeded random fraction ``participation`` of the clients takes part
(:func:`random_participants`: the same clients for the same seed and round, so a resumed run
draws the same), they train as FedST clients do (:func:`~fednuclei.methods.fedst.fedst_local_training`),
and the pixel-labelled clients among them hold a fixed trust share ``pixel_share`` of the
aggregate (:func:`~fednuclei.methods.fedst.trust_share_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
