"""Figures of the reports: learning curves and score bars (headless matplotlib)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # reports are drawn on servers without a display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import pandas as pd

HEADLINE_METRICS = ["dice", "aji", "pq"]


def score_bars(means: pd.DataFrame, title: str) -> plt.Figure:
    """Grouped bars: one group per row of ``means`` (a client, a method), one bar per metric column, in [0, 1]."""
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(means)), 4))
    means.plot.bar(ax=axis, rot=0)
    axis.set(ylabel="mean over test tiles", ylim=(0, 1), title=title)
    axis.legend(ncols=len(means.columns), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    figure.tight_layout()
    return figure


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Training loss and validation Dice per round; one line per ``run`` column value (local training)."""
    figure, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(10, 4))
    runs = history.groupby("run") if "run" in history else [("global", history)]
    for name, rows in runs:
        loss_axis.plot(rows["round"], rows["train_loss"], marker="o", label=name)
        dice_axis.plot(rows["round"], rows["val_dice"], marker="o", label=name)
    loss_axis.set(xlabel="round", ylabel="training loss (Dice + BCE)", title="training loss")
    dice_axis.set(xlabel="round", ylabel="validation Dice", title="validation Dice", ylim=(0, 1))
    for axis in (loss_axis, dice_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    dice_axis.legend(fontsize="small")
    figure.tight_layout()
    return figure
