"""What an incremental stage did: test metrics per client before and after it, the old clients'
change (backward transfer; a negative change is forgetting) and the new clients' gain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

TRANSFER_METRICS = ("dice", "aji", "pq")


def before_after(per_image: Mapping[str, pd.DataFrame], new_clients: Sequence[str],
                 metrics: Sequence[str] = TRANSFER_METRICS) -> pd.DataFrame:
    """Test-split means per client of several models, and the change from the first to the second.

    Args:
        per_image: model label -> its per-image scores (columns ``tile``, ``client``, ``split``
            and the metrics), in order: the first is "before", the second "after" (e.g.
            ``{"before": ..., "after": ..., "scratch": ...}``).
        new_clients: the clients new in the second model's run (joiners); the others are old.
        metrics: metric columns, averaged per image (NaN left out, as AJI on inexact instances).

    Returns:
        one row per client, then ``old clients``, ``new clients`` and ``all`` rows (means over
        their images): ``client``, ``kind`` (``old``, ``new`` or ``overall``), ``n_images``,
        ``<metric>_<label>`` per model and ``<metric>_change`` (after - before: for old clients a
        drop is forgetting, for new ones a rise is their gain).
    """
    labels = list(per_image)
    if len(labels) < 2:
        raise ValueError(f"need a model before and after, got {labels}")
    tests = {label: rows[rows["split"] == "test"].set_index("tile") for label, rows in per_image.items()}
    tiles = tests[labels[0]].index.intersection(tests[labels[1]].index)  # scored by both
    clients = tests[labels[0]].loc[tiles, "client"]
    kinds = clients.map(lambda client: "new" if client in set(new_clients) else "old")
    groups = {client: clients.index[clients == client] for client in sorted(set(clients))}
    groups |= {f"{kind} clients": kinds.index[kinds == kind] for kind in ("old", "new") if (kinds == kind).any()}
    groups["all"] = tiles
    rows = []
    for name, members in groups.items():
        kind = kinds[members[0]] if name in set(clients) else "overall"
        row = {"client": name, "kind": kind, "n_images": len(members)}
        for metric in metrics:
            for label in labels:
                row[f"{metric}_{label}"] = float(tests[label].reindex(members)[metric].mean())
            row[f"{metric}_change"] = row[f"{metric}_{labels[1]}"] - row[f"{metric}_{labels[0]}"]
        rows.append(row)
    return pd.DataFrame(rows)


def backward_transfer(table: pd.DataFrame, metrics: Sequence[str] = TRANSFER_METRICS) -> dict[str, float]:
    """Backward transfer per metric: the mean change over the old clients (each client counts
    once), from :func:`before_after`'s table; NaN without old clients."""
    old = table[table["kind"] == "old"]
    return {metric: float(old[f"{metric}_change"].mean()) if len(old) else np.nan for metric in metrics}
