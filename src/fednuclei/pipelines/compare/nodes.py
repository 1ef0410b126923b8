"""Nodes of the compare pipeline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # nodes run headless
import matplotlib.pyplot as plt
import pandas as pd

from fednuclei.metrics import summarise

HEADLINE = ["dice", "aji", "pq"]


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
    overall = metrics_table[metrics_table["level"] == "overall"].set_index("method")[HEADLINE]
    figure, axis = plt.subplots(figsize=(max(6, 1.3 * len(overall)), 4))
    overall.plot.bar(ax=axis, rot=0)
    axis.set(ylabel="mean over test tiles", ylim=(0, 1), title="methods compared on the same clients and budget")
    axis.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    figure.tight_layout()
    return figure
