"""The training template: settings -> training -> evaluation, namespaced per method.

``kedro run --pipeline fedavg`` runs data_processing, augmentation and this template under the
``fedavg`` namespace (datasets ``fedavg.global_model``, ``fedavg.metrics_summary``, ...; parameters
``fedavg.training``). ``kedro run --pipeline training`` trains and evaluates every method on data
already prepared.
"""

from kedro.pipeline import Node, Pipeline, pipeline

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
    train_centralized_model,
    train_federated_model,
    train_local_models,
)

# method -> the label view of the client data it trains on: the fully supervised references see
# every client's masks; FedAvg restricted to the pixel clients and the mixed-supervision methods
# see what each hospital really holds.
METHODS = {
    "local": "full",
    "centralized": "full",
    "fedavg": "full",
    "fedavg_pixel": "supervised",
    "fedmix": "supervised",
    "fedst": "supervised",
    "fedrgd": "supervised",
}
# Methods trained outside Flower; the others are Flower strategies chosen by `training.method`.
BASELINE_TRAINERS = {"local": train_local_models, "centralized": train_centralized_model}


def create_method_pipeline(method: str) -> Pipeline:
    """Training and evaluation of ``method``, every dataset and parameter under its namespace."""
    view = METHODS[method]
    train = BASELINE_TRAINERS.get(method, train_federated_model)
    per_client = method == "local"
    model = "client_models" if per_client else "global_model"
    evaluated = ["metrics_per_image", "metrics_summary", "predictions", "overlays"]
    template = Pipeline(
        [
            Node(
                run_settings,
                [f"{view}.client_patches", f"{view}.augmented_patches", f"{view}.client_partitions", "tile_manifest",
                 f"params:{view}.labels", "params:training", "params:profiles", "params:profile"],
                "run_config",
                name="run_settings",
            ),
            Node(train, "run_config", [model, "training_history"], name="train"),
            Node(round_metrics, "training_history", "round_metrics", name="round_metrics"),
            Node(plot_learning_curves, "training_history", "learning_curves", name="plot_learning_curves"),
            Node(
                evaluate_local_models if per_client else evaluate_global_model,
                [model, "evaluation_tiles", "run_config"],
                evaluated + ["cross_site_dice"] if per_client else evaluated,
                name="evaluate",
            ),
            Node(final_metrics, "metrics_summary", "final_metrics", name="final_metrics"),
            Node(plot_client_scores, "metrics_per_image", "client_scores", name="plot_client_scores"),
        ]
    )
    shared = {f"{view}.client_patches", f"{view}.augmented_patches", f"{view}.client_partitions", "tile_manifest",
              "evaluation_tiles"}
    return pipeline(template, namespace=method, inputs=shared,
                    parameters={"params:profiles", "params:profile", f"params:{view}.labels"})


def end_to_end(method: str) -> Pipeline:
    """Data preparation, then ``method``'s training and evaluation: the pipeline named after it."""
    return data_processing() + augmentation() + create_method_pipeline(method)


def create_pipeline(**kwargs) -> Pipeline:
    return sum(create_method_pipeline(method) for method in METHODS)
