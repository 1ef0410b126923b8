"""Data preparation, every method's training template, then the comparison table and plot."""

from kedro.pipeline import Node, Pipeline

from fednuclei.methods import METHODS

from ..augmentation import create_pipeline as augmentation
from ..data_processing import create_pipeline as data_processing
from ..training import create_method_pipeline
from .nodes import compare_methods, plot_method_scores


def create_pipeline(**kwargs) -> Pipeline:
    compared = list(METHODS)
    comparison = Pipeline(
        [
            Node(compare_methods, {m: f"{m}.metrics_per_image" for m in compared}, "compare.metrics_table",
                 name="compare_methods"),
            Node(plot_method_scores, "compare.metrics_table", "compare.method_scores", name="plot_method_scores"),
        ]
    )
    return data_processing() + augmentation() + sum(create_method_pipeline(m) for m in compared) + comparison
