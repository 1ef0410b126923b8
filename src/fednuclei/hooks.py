"""Project hooks."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline

from fednuclei.atomic import remove_staging_leftovers
from fednuclei.datasets import ModelDataset, ModelSetDataset
from fednuclei.freshness.manifest import Manifest
from fednuclei.freshness.signatures import unwrap
from fednuclei.parameter_checks import check_parameters
from fednuclei.pipeline_registry import DEFAULT_METHOD
from fednuclei.project_lock import LOCK_FILE, ProjectLock

logger = logging.getLogger(__name__)


class ProjectLockHook:
    """One ``kedro run`` at a time per project folder: the run takes the project's lock
    (:mod:`fednuclei.project_lock`) before anything else and gives it back when it ends, failed or
    not; a second run started meanwhile stops at once, naming the lock file and the PID that holds
    it. Holding the lock, the run removes what writes of killed runs left under ``data/``
    (:func:`fednuclei.atomic.remove_staging_leftovers`): no other process is writing there."""

    def __init__(self) -> None:
        self._lock: ProjectLock | None = None

    @hook_impl(wrapper=True, tryfirst=True)  # around every other hook, kedro-mlflow's included
    def before_pipeline_run(self, run_params: dict):
        project = Path(run_params["project_path"])
        self._release()  # a run of this process interrupted before its end hooks (Ctrl-C in a notebook)
        self._lock = ProjectLock(project / LOCK_FILE).acquire()
        try:
            data = project / "data"
            removed = remove_staging_leftovers(data, keep_out=(data / "01_raw",))
            if removed:
                logger.info("Removed %d leftovers of interrupted writes: %s", len(removed),
                            ", ".join(str(path.relative_to(project)) for path in removed))
            return (yield)
        except BaseException:
            self._release()
            raise

    @hook_impl(wrapper=True)
    def after_pipeline_run(self):
        try:
            return (yield)
        finally:
            self._release()

    @hook_impl(wrapper=True)
    def on_pipeline_error(self):
        try:
            return (yield)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class ParameterCheckHook:
    """Checks the parameters the run's nodes read before the first node runs
    (:func:`fednuclei.parameter_checks.check_parameters`): a bad value stops the run before
    anything is written, with one error naming its key."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook opens an MLflow run for the pipeline
    def before_pipeline_run(self, pipeline: Pipeline, catalog) -> None:
        used = {name.removeprefix("params:") for name in pipeline.inputs() if name.startswith("params:")}
        check_parameters(catalog.load("parameters"), used)


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
