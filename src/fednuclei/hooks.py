"""Project hooks."""

from __future__ import annotations

import mlflow
from kedro.framework.hooks import hook_impl

from fednuclei.pipeline_registry import DEFAULT_METHOD


class MethodTagHook:
    """Tags the MLflow run of a method's pipeline with ``method=<name>``, so runs compare by method."""

    @hook_impl(trylast=True)  # after kedro-mlflow's own hook has started the run
    def before_pipeline_run(self, run_params: dict) -> None:
        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        mlflow.set_tag("method", "+".join(DEFAULT_METHOD if name == "__default__" else name for name in names))
