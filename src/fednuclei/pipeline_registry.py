"""Project pipelines, found with ``find_pipelines()``: the data stages, the training template
(``training``: every method on data already prepared), and one end-to-end pipeline per method."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

DEFAULT_METHOD = "fedavg"


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline package under ``fednuclei.pipelines``; ``kedro run`` runs the default method."""
    pipelines = find_pipelines(raise_errors=True)
    if DEFAULT_METHOD in pipelines:  # absent when the command line asked for another pipeline only
        pipelines["__default__"] = pipelines[DEFAULT_METHOD]
    return pipelines
