"""Project hooks."""

from __future__ import annotations

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline

from fednuclei.datasets import ModelDataset, ModelSetDataset
from fednuclei.freshness.manifest import Manifest
from fednuclei.freshness.signatures import unwrap
from fednuclei.pipeline_registry import DEFAULT_METHOD


class MethodTagHook:
    """Tags the MLflow run of a method's pipeline with ``method=<name>``, so runs compare by method."""

    @hook_impl(trylast=True)  # after kedro-mlflow's own hook has started the run
    def before_pipeline_run(self, run_params: dict) -> None:
        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        mlflow.set_tag("method", "+".join(DEFAULT_METHOD if name == "__default__" else name for name in names))


class ReusedRunsHook:
    """Says on the MLflow run of a ``kedro run`` which earlier runs it reused: the runs that logged
    the outputs of the nodes it skipped as fresh (:mod:`fednuclei.freshness`). Tag
    ``freshness.reused_runs`` lists them; when no node that saves a model ran, the run's
    description says that its models and metrics are those runs'."""

    def __init__(self) -> None:
        self._ran: set[str] = set()

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._ran = set()

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self._ran.add(node.name)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own hook ends the run
    def after_pipeline_run(self, pipeline: Pipeline, catalog) -> None:
        run = mlflow.active_run()
        if run is None:
            return
        manifest = Manifest()
        records = [manifest.get(node.name) for node in pipeline.nodes if node.name not in self._ran]
        reused = sorted({record["mlflow_run"] for record in records if record and record.get("mlflow_run")}
                        - {run.info.run_id})
        if not reused:
            return
        tags = {"freshness.reused_runs": ",".join(reused)}
        training = {node.name for node in pipeline.nodes if _saves_a_model(node, catalog)}
        if training and self._ran.isdisjoint(training):
            tags["mlflow.note.content"] = (f"Nothing was trained: every training node was fresh. The models and "
                                           f"their metrics are those of MLflow run {', '.join(reused)}.")
        mlflow.set_tags(tags)


def _saves_a_model(node: Node, catalog) -> bool:
    """Whether ``node`` trains: one of its outputs is a model file or a set of them."""
    return any(isinstance(unwrap(catalog.get(name, fallback_to_runtime_pattern=True)), (ModelDataset, ModelSetDataset))
               for name in node.outputs)
