"""The training template: settings -> training -> evaluation, one namespace per method.

``kedro run --pipeline fedavg`` runs data_processing, augmentation and this template under the
``fedavg`` namespace (datasets ``fedavg.global_model``, ``fedavg.metrics_summary``, ...; parameters
``fedavg.training``). Every method of :data:`fednuclei.methods.METHODS` gets such a pipeline,
registered under its name; ``kedro run --pipeline training`` trains and evaluates every method on
data already prepared.
"""

from functools import partial

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.methods import METHODS, method_of

from ..augmentation import create_pipeline as augmentation
from ..data_processing import create_pipeline as data_processing
from .nodes import (
    evaluate_global_model,
    evaluate_local_models,
    final_metrics,
    plot_client_scores,
    plot_learning_curves,
    round_metrics,
    run_settings,
    train_global_model,
    train_local_models,
)


def create_method_pipeline(name: str) -> Pipeline:
    """Training and evaluation of the method ``name``, every dataset and parameter under its namespace."""
    method = method_of(name)
    view = method.label_view
    model = "client_models" if method.model_per_client else "global_model"
    evaluated = ["metrics_per_image", "metrics_summary", "predictions", "overlays"]
    template = Pipeline(
        [
            Node(
                partial(run_settings, method=name),
                [f"{view}.client_patches", f"{view}.augmented_patches", f"{view}.client_partitions", "tile_manifest",
                 f"params:{view}.labels", "params:training", "params:profiles", "params:profile"],
                "run_settings",
                name="run_settings",
            ),
            Node(train_local_models if method.model_per_client else train_global_model, "run_settings",
                 [model, "training_history"], name="train"),
            Node(round_metrics, "training_history", "round_metrics", name="round_metrics"),
            Node(plot_learning_curves, "training_history", "learning_curves", name="plot_learning_curves"),
            Node(
                evaluate_local_models if method.model_per_client else evaluate_global_model,
                [model, "evaluation_tiles", "run_settings"],
                evaluated + ["cross_site_dice"] if method.model_per_client else evaluated,
                name="evaluate",
            ),
            Node(final_metrics, "metrics_summary", "final_metrics", name="final_metrics"),
            Node(plot_client_scores, "metrics_per_image", "client_scores", name="plot_client_scores"),
        ]
    )
    shared = {f"{view}.client_patches", f"{view}.augmented_patches", f"{view}.client_partitions", "tile_manifest",
              "evaluation_tiles"}
    return pipeline(template, namespace=name, inputs=shared,
                    parameters={"params:profiles", "params:profile", f"params:{view}.labels"})


def end_to_end(name: str) -> Pipeline:
    """Data preparation, then the method's training and evaluation: the pipeline named after it."""
    return data_processing() + augmentation() + create_method_pipeline(name)


def create_pipeline(**kwargs) -> Pipeline:
    return sum(create_method_pipeline(name) for name in METHODS)
