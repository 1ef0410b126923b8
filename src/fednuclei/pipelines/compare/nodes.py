"""Nodes of the compare pipeline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fednuclei.drawing import HEADLINE_METRICS, score_bars
from fednuclei.metrics import summarise


def compare_methods(**per_image: pd.DataFrame) -> pd.DataFrame:
    """Test-split means of every metric, one row per method overall and per method and client.

    The overall rows average the test tiles that every method scored, so that the methods are
    compared on the same images: local training has no model for a hospital that never trained
    (a late joiner), so its tiles are left out there and shown in that client's rows only.

    Args:
        per_image: each method's ``metrics_per_image``, keyed by method name.

    Returns:
        columns ``method, level`` (``overall`` or ``client``), ``group`` (``all`` or the client),
        ``n_images`` and one column per metric.
    """
    test = pd.concat([rows[rows["split"] == "test"].assign(method=method) for method, rows in per_image.items()])
    scored_by_all = set.intersection(*(set(rows["tile"]) for _, rows in test.groupby("method")))
    overall = summarise(test[test["tile"].isin(scored_by_all)], [], within=["method"])
    per_client = summarise(test, ["client"], within=["method"])
    summary = pd.concat([overall, per_client[per_client["level"] != "overall"]])
    summary = summary.sort_values("method", key=lambda m: m.map(list(per_image).index), kind="stable")
    table = summary.pivot_table(index=["method", "level", "group"], columns="metric", values="mean", sort=False,
                                observed=True)
    counts = summary.groupby(["method", "level", "group"], sort=False)["n_images"].max()
    return table.assign(n_images=counts).reset_index()


def plot_method_scores(metrics_table: pd.DataFrame) -> plt.Figure:
    """Overall test Dice, AJI and PQ of each method, as grouped bars."""
    overall = metrics_table[metrics_table["level"] == "overall"].set_index("method")[HEADLINE_METRICS]
    return score_bars(overall, "methods compared on the same clients and budget")
