"""Project pipelines: the data stages, one end-to-end pipeline per method of
:data:`fednuclei.methods.METHODS` (named after it), ``training`` (every method on data already
prepared) and ``compare``.

Registered here rather than with ``find_pipelines()``: Kedro 1.7 loads only the packages a
``--pipeline`` names, and the method pipelines are instances of one template, not packages.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from fednuclei.methods import METHODS
from fednuclei.pipelines import augmentation, compare, data_processing, training

DEFAULT_METHOD = "fedavg"


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline; ``kedro run`` runs the default method end to end."""
    pipelines = {package.__name__.rsplit(".", 1)[-1]: package.create_pipeline()
                 for package in (data_processing, augmentation, training, compare)}
    pipelines.update({name: training.end_to_end(name) for name in METHODS})
    pipelines["__default__"] = pipelines[DEFAULT_METHOD]
    return pipelines
