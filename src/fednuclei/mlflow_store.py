"""The MLflow tracking store of a Kedro run, and what a failing store costs: the tracking, never
the results.

kedro-mlflow opens the store of ``conf/<env>/mlflow.yml`` when the Kedro context is created,
starts one MLflow run when a tracked pipeline starts and ends it when the pipeline ends.
:class:`TrackingStoreHook` wraps those hooks:

* a relative SQLite store (``sqlite:///mlflow.db``) is the project folder's, wherever ``kedro``
  runs from (kedro-mlflow resolves relative paths against the project, SQLAlchemy resolves
  ``sqlite:///`` URIs against the current folder);
* a store that cannot be opened (a corrupt or locked ``mlflow.db``) is named in the log and left
  alone by pipelines that are not tracked (``data_processing``, ``augmentation``); a tracked
  pipeline stops before its first node;
* a store that fails during the run (locked by another process) stops the tracking of that run
  (:func:`stop_tracking`): the failure is logged, the MLflow run is ended FAILED, and the nodes go
  on; the project's MLflow datasets (:mod:`fednuclei.mlflow_tracking`) save their real output
  first and report a logging failure instead of raising it;
* a run is never recorded FINISHED unless its pipeline and its tracking both succeeded: kedro-mlflow
  ends a failed pipeline's run FAILED, an interrupted process's run is ended KILLED at exit, and
  runs that a killed process left RUNNING are marked KILLED by the next run of the project.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
from kedro_mlflow.framework.hooks import mlflow_hook
from kedro_mlflow.framework.hooks.utils import _assert_mlflow_enabled
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

#: What a failing tracking store raises: MLflow's errors, and SQLAlchemy's when the store cannot
#: even be opened (a file that is not a database).
STORE_ERRORS = (MlflowException, SQLAlchemyError)
SQLITE = "sqlite:///"
#: Where kedro-mlflow looks for ``mlflow.yml`` (its own patterns, registered before it reads them).
MLFLOW_CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]


class TrackingStoreError(RuntimeError):
    """A tracked pipeline cannot run: its tracking store cannot be used."""


def project_store_uri(uri: str | None, project_path: str | Path) -> str | None:
    """``uri`` with a relative SQLite path made absolute against ``project_path``."""
    if uri is None or not uri.startswith(SQLITE):
        return uri
    path = uri.removeprefix(SQLITE)
    if not path or path.startswith("/") or path == ":memory:":
        return uri
    return SQLITE + (Path(project_path) / path).as_posix()


def store_problem(error: BaseException) -> str:
    """The first line of a store error: SQLAlchemy's go on with the SQL statement."""
    return str(error).strip().splitlines()[0]


def stop_tracking(error: BaseException, what: str) -> None:
    """After the store failed while logging ``what``: log it, end the active MLflow run FAILED
    and track nothing more in this run (kedro-mlflow's hook is switched off until the next run;
    the project's MLflow datasets log nothing without an active run)."""
    run = mlflow.active_run()
    logger.warning("MLflow tracking store %s failed while logging %s (%s): the outputs are saved as usual, but the "
                   "rest of this run is not tracked%s", mlflow.get_tracking_uri(), what, store_problem(error),
                   f" and MLflow run {run.info.run_id} is ended FAILED" if run else "")
    mlflow_hook._is_mlflow_enabled = False
    mlflow_hook.run_id = None
    if run is not None:
        try:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))  # leaves the run inactive even when it fails
        except STORE_ERRORS as end_error:
            logger.warning("MLflow run %s could not be ended FAILED (%s): the next run of the project marks it "
                           "KILLED", run.info.run_id, store_problem(end_error))


def mark_abandoned_runs(project_path: str) -> list[str]:
    """Mark KILLED the MLflow runs of the project at ``project_path`` (kedro-mlflow's
    ``project_path`` tag) that are still RUNNING: with the project lock held, no process is
    running them any more (killed, or its store failed when it ended them).

    Returns:
        the ids of the runs marked.
    """
    client = mlflow.MlflowClient()
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'") if experiments else []
    marked = []
    for run in running:
        if run.data.tags.get("project_path") == project_path:
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            logger.warning("MLflow run %s (%s) was left RUNNING by a process that ended without closing it: "
                           "marked KILLED", run.info.run_id, run.info.run_name)
            marked.append(run.info.run_id)
    return marked


class TrackingStoreHook:
    """Wraps kedro-mlflow's hooks so that a failing tracking store costs the tracking, never the
    results (see the module docstring). Runs left RUNNING are looked for once the run holds the
    project lock (``fednuclei.hooks.ProjectLockHook``, around every hook): no other run is writing."""

    def __init__(self) -> None:
        self._store: str | None = None
        self._problem: str | None = None  # why the store could not be opened
        self._run_id: str | None = None  # the MLflow run of the pipeline running now
        atexit.register(self._end_interrupted_run)  # runs before mlflow's own, which would end the run FINISHED

    @hook_impl(wrapper=True)
    def after_context_created(self, context):
        self._store, self._problem = None, None
        config = self._store_in_project(context)
        try:
            return (yield)
        except STORE_ERRORS as error:
            self._problem = store_problem(error)
            # kedro-mlflow raised before keeping its configuration; with it, it leaves untracked
            # pipelines alone, and tracked ones stop in before_pipeline_run
            mlflow_hook.mlflow_config = KedroMlflowConfig.model_validate(config)
            mlflow_hook._already_active_mlflow = False
            return []

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any]):
        names = run_params.get("pipeline_names") or ["__default__"]
        config = getattr(mlflow_hook, "mlflow_config", None)  # absent when kedro-mlflow's hooks are disabled
        tracked = config is not None and _assert_mlflow_enabled(names, config)
        if self._problem is not None:
            if tracked:
                raise TrackingStoreError(f"MLflow tracking store {self._store} cannot be used ({self._problem}): "
                                         f"pipeline {'+'.join(names)} is tracked, so nothing was run. Repair or "
                                         f"remove the store, or set another in conf/<env>/mlflow.yml")
            logger.warning("MLflow tracking store %s cannot be used (%s); pipeline %s is not tracked, so it runs",
                           self._store, self._problem, "+".join(names))
        else:
            try:
                mark_abandoned_runs(run_params["project_path"])
            except STORE_ERRORS as error:
                logger.warning("MLflow tracking store %s: runs left RUNNING could not be looked for (%s)",
                               self._store, store_problem(error))
        try:
            result = yield
        except BaseException as error:
            if mlflow.active_run() is not None:  # started by kedro-mlflow, which ends it only after the pipeline
                _end_quietly(RunStatus.FAILED)
            if isinstance(error, STORE_ERRORS):
                raise TrackingStoreError(f"MLflow tracking store {self._store} failed as pipeline "
                                         f"{'+'.join(names)} started ({store_problem(error)}), so nothing was run"
                                         ) from error
            raise
        run = mlflow.active_run()
        self._run_id = run.info.run_id if run is not None else None
        return result

    @hook_impl(wrapper=True)
    def before_node_run(self, node):
        try:
            return (yield)
        except STORE_ERRORS as error:  # kedro-mlflow logging the node's parameters
            stop_tracking(error, f"the parameters of node {node.name}")
            return []

    @hook_impl(wrapper=True)
    def after_pipeline_run(self):
        try:
            return (yield)
        except STORE_ERRORS as error:
            stop_tracking(error, "the end of the pipeline")
            return []
        finally:
            self._run_id = None

    @hook_impl(wrapper=True)
    def on_pipeline_error(self):
        try:
            return (yield)
        except STORE_ERRORS as error:  # the pipeline's own error matters more: Kedro raises it next
            logger.warning("MLflow tracking store %s failed while ending the failed pipeline's run (%s): the next "
                           "run of the project marks it KILLED", self._store, store_problem(error))
            return []
        finally:
            self._run_id = None

    def _store_in_project(self, context) -> dict[str, Any]:
        """kedro-mlflow's configuration with the store resolved against the project folder,
        handed to it through the config loader."""
        loader = context.config_loader
        loader.config_patterns.setdefault("mlflow", MLFLOW_CONFIG_PATTERNS)
        try:
            config = loader["mlflow"]
        except MissingConfigException:
            return {}
        server = dict(config.get("server") or {})
        for key in ("mlflow_tracking_uri", "mlflow_registry_uri"):
            server[key] = project_store_uri(server.get(key), context.project_path)
        config = {**config, "server": server}
        loader["mlflow"] = config
        self._store = server["mlflow_tracking_uri"]
        return config

    def _end_interrupted_run(self) -> None:
        run = mlflow.active_run()
        if run is not None and run.info.run_id == self._run_id:  # the pipeline never reached its end hooks
            _end_quietly(RunStatus.KILLED)


def _end_quietly(status: int) -> None:
    try:
        mlflow.end_run(RunStatus.to_string(status))
    except STORE_ERRORS as error:
        logger.warning("MLflow run could not be ended %s (%s): the next run of the project marks it KILLED",
                       RunStatus.to_string(status), store_problem(error))
