"""Averages of per-image metrics by client, organ, split, method."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fednuclei.metrics.objects import OBJECT_METRICS
from fednuclei.metrics.pixel import PIXEL_METRICS

METRICS = PIXEL_METRICS + OBJECT_METRICS
_SUMMARY_KEYS = ("level", "group", "metric")


def summarise(
    per_image: pd.DataFrame,
    by: Sequence[str],
    *,
    within: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean, standard deviation and count of each metric per group of images, plus overall.

    Every image counts once (macro average), as MoNuSeg averages per-image AJI.

    Args:
        per_image: one row per image: metric columns (e.g. from :func:`image_metrics`) and
            grouping columns such as ``method``, ``client``, ``organ``, ``split``.
        by: grouping columns; each one is a level of the summary, after the ``overall`` level.
        within: columns that split every level, e.g. ``["method"]`` to compare methods; they are
            kept as the leading columns of the result.
        metrics: metric columns to summarise; default: those of :data:`METRICS` in ``per_image``.

    Returns:
        A long table, one row per (``*within``, level, group, metric), with columns ``*within``,
        ``level`` (``"overall"`` or a name from ``by``), ``group`` (``"all"`` for ``overall``, else
        the group's value as a string; a missing value forms a group of its own), ``metric``,
        ``n_images`` (images with a value: NaN, e.g. an object metric of a tile without exact
        instances, is left out), ``mean`` and ``std`` (sample standard deviation, NaN for one image).
        Rows are ordered by ``within``, then level in the order ``overall, *by``, then group, then
        metric in the order of ``metrics``.
        For a wide view: ``summary.pivot_table(index=[..., "level", "group"], columns="metric",
        values="mean", sort=False)``.
    """
    metrics = [m for m in METRICS if m in per_image.columns] if metrics is None else list(metrics)
    missing = [c for c in [*within, *by, *metrics] if c not in per_image.columns]
    if missing:
        raise KeyError(f"per_image lacks column(s) {missing}")
    clashes = sorted(set(within) & set(_SUMMARY_KEYS))
    if clashes:
        raise ValueError(f"within cannot use the summary's own column name(s) {clashes}")
    long = per_image.melt(id_vars=list(dict.fromkeys([*within, *by])), value_vars=metrics, var_name="metric")
    long["metric"] = pd.Categorical(long["metric"], categories=metrics)  # keeps the metric order
    parts = []
    for level in ["overall", *by]:
        group = "all" if level == "overall" else long[level].astype(str)
        stats = (
            long.assign(level=level, group=group)
            .groupby([*within, *_SUMMARY_KEYS], observed=True, dropna=False)["value"]
            .agg(n_images="count", mean="mean", std="std")
            .reset_index()
        )
        parts.append(stats)
    summary = pd.concat(parts, ignore_index=True)
    if within:
        summary = summary.sort_values(list(within), kind="stable", ignore_index=True)
    summary["metric"] = summary["metric"].astype(str)
    return summary
