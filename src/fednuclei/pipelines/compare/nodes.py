"""Nodes of the compare pipeline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fednuclei.metrics import summarise
from fednuclei.plots import HEADLINE_METRICS, score_bars


def compare_methods(**per_image: pd.DataFrame) -> pd.DataFrame:
    """Test-split means of every metric, one row per method overall and per method and client.

    Args:
        per_image: each method's ``metrics_per_image``, keyed by method name.

    Returns:
        columns ``method, level`` (``overall`` or ``client``), ``group`` (``all`` or the client),
        ``n_images`` and one column per metric.
    """
    test = pd.concat([rows[rows["split"] == "test"].assign(method=method) for method, rows in per_image.items()])
    summary = summarise(test, ["client"], within=["method"])
    table = summary.pivot_table(index=["method", "level", "group"], columns="metric", values="mean", sort=False,
                                observed=True)
    counts = summary.groupby(["method", "level", "group"], sort=False)["n_images"].max()
    return table.assign(n_images=counts).reset_index()


def plot_method_scores(metrics_table: pd.DataFrame) -> plt.Figure:
    """Overall test Dice, AJI and PQ of each method, as grouped bars."""
    overall = metrics_table[metrics_table["level"] == "overall"].set_index("method")[HEADLINE_METRICS]
    return score_bars(overall, "methods compared on the same clients and budget")
