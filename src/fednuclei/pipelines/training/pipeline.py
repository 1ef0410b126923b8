"""The training template: settings -> training -> incremental stage -> evaluation, one namespace per method.

``kedro run --pipeline fedavg`` runs data_processing, augmentation and this template under the
``fedavg`` namespace (datasets ``fedavg.global_model``, ``fedavg.metrics_summary``, ...; parameters
``fedavg.training``). Every method of :data:`fednuclei.methods.METHODS` gets such a pipeline,
registered under its name; ``kedro run --pipeline training`` trains and evaluates every method on
data already prepared.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.methods import METHODS, Method, method_of

from ..augmentation import create_pipeline as augmentation
from ..data_processing import create_pipeline as data_processing
from .incremental import incremental_report, score_model, train_from_scratch, train_incremental
from .nodes import (
    all_rounds,
    evaluate_global_model,
    evaluate_local_models,
    final_metrics,
    plot_best_and_worst,
    plot_client_rounds,
    plot_client_scores,
    plot_cross_site_dice,
    plot_learning_curves,
    round_metrics,
    run_settings,
    stage_settings,
    train_global_model,
    train_local_models,
)


def for_method(function, method: str) -> partial:
    """``function`` with its ``method`` argument bound, keeping its name and annotations for Kedro's
    logs and parameter checks."""
    return update_wrapper(partial(function, method=method), function)

def create_method_pipeline(name: str) -> Pipeline:
    """Training and evaluation of the method ``name``, every dataset and parameter under its
    namespace; a federated method also gets its incremental stage and its report."""
    method = method_of(name)
    view = method.label_view
    data = [f"{view}.client_patches", f"{view}.augmented_patches", f"{view}.client_partitions"]
    parameters = [f"params:{view}.labels", "params:training", "params:profiles", "params:profile"]
    evaluated = ["metrics_per_image", "metrics_summary", "predictions", "overlays"]
    history = "round_history" if method.federated else "training_history"  # a federated run's rounds span its stages
    reports = _report_nodes(method, history)
    if method.model_per_client:
        nodes = [
            Node(for_method(run_settings, name), [*data, "tile_manifest", *parameters], "run_settings",
                 name="run_settings"),
            Node(train_local_models, "run_settings", ["client_models", "training_history"], name="train"),
            Node(evaluate_local_models, ["client_models", "evaluation_tiles", "run_settings"],
                 [*evaluated, "cross_site_dice"], name="evaluate"),
        ]
    elif not method.federated:
        nodes = [
            Node(for_method(run_settings, name), [*data, "tile_manifest", *parameters], "run_settings",
                 name="run_settings"),
            Node(train_global_model, "run_settings", ["global_model", "training_history"], name="train"),
            Node(evaluate_global_model, ["global_model", "evaluation_tiles", "run_settings"], evaluated,
                 name="evaluate"),
        ]
    else:
        data += [f"{view}.incremental_patches", f"{view}.incremental_augmented_patches",
                 f"{view}.incremental_partitions"]
        nodes = [
            Node(for_method(stage_settings, name), [*data, "tile_manifest", *parameters],
                 ["run_settings", "incremental_settings", "scratch_settings"], name="stage_settings"),
            Node(train_global_model, "run_settings", ["base_model", "training_history"], name="train"),
            Node(train_incremental, ["run_settings", "incremental_settings", "base_model"],
                 ["global_model", "incremental_history"], name="train_incremental"),
            Node(train_from_scratch, "scratch_settings", ["scratch_model", "scratch_history"],
                 name="train_from_scratch"),
            Node(all_rounds, ["training_history", "incremental_history"], "round_history", name="all_rounds"),
            Node(evaluate_global_model, ["global_model", "evaluation_tiles", "run_settings"], evaluated,
                 name="evaluate"),
            Node(score_model, ["base_model", "evaluation_tiles", "run_settings"], "base_metrics_per_image",
                 name="score_base_model"),
            Node(score_model, ["scratch_model", "evaluation_tiles", "run_settings"], "scratch_metrics_per_image",
                 name="score_scratch_model"),
            Node(incremental_report,
                 ["base_metrics_per_image", "metrics_per_image", "scratch_metrics_per_image", "run_settings",
                  "incremental_settings", "training_history", "incremental_history", "scratch_history"],
                 ["incremental_report", "incremental_plot", "incremental_metrics"], name="incremental_report"),
        ]
    return pipeline(Pipeline(nodes + reports), namespace=name, inputs={*data, "tile_manifest", "evaluation_tiles"},
                    parameters={"params:profiles", "params:profile", f"params:{view}.labels"})


def _report_nodes(method: Method, history: str) -> list[Node]:
    """Tables and plots of a trained method, from its round history and its evaluation."""
    reports = [
        Node(round_metrics, history, "round_metrics", name="round_metrics"),
        Node(plot_learning_curves, history, "learning_curves", name="plot_learning_curves"),
        Node(final_metrics, "metrics_summary", "final_metrics", name="final_metrics"),
        Node(plot_client_scores, "metrics_per_image", "client_scores", name="plot_client_scores"),
        Node(plot_best_and_worst, ["metrics_per_image", "evaluation_tiles", "predictions"], "best_and_worst",
             name="plot_best_and_worst"),
    ]
    if method.federated:
        reports.append(Node(plot_client_rounds, history, "client_rounds", name="plot_client_rounds"))
    if method.model_per_client:
        reports.append(Node(plot_cross_site_dice, "cross_site_dice", "cross_site_plot", name="plot_cross_site_dice"))
    return reports


def end_to_end(name: str) -> Pipeline:
    """Data preparation, then the method's training and evaluation: the pipeline named after it."""
    return data_processing() + augmentation() + create_method_pipeline(name)


def create_pipeline(**kwargs) -> Pipeline:
    return sum(create_method_pipeline(name) for name in METHODS)
