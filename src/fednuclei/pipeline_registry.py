"""Project pipelines: the data stages, and one end-to-end pipeline per method.

Built explicitly rather than with ``find_pipelines()``: since Kedro 1.7 that function imports only
the pipeline packages named on the command line, and a method's pipeline (``fedavg``) is composed
from other packages' pipelines.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from fednuclei.pipelines import augmentation, data_processing
from fednuclei.pipelines.training import METHODS, create_method_pipeline

DEFAULT_METHOD = "fedavg"


def register_pipelines() -> dict[str, Pipeline]:
    """``data_processing``, ``augmentation``, and per method (``fedavg``, ``local``, ``centralized``)
    data_processing + augmentation + training + evaluation; ``kedro run`` runs the default method."""
    pipelines = {
        "data_processing": data_processing.create_pipeline(),
        "augmentation": augmentation.create_pipeline(),
    }
    data = pipelines["data_processing"] + pipelines["augmentation"]
    for method in METHODS:
        pipelines[method] = data + create_method_pipeline(method)
    pipelines["__default__"] = pipelines[DEFAULT_METHOD]
    return pipelines
