"""Kedro glue for MLflow: datasets whose tracking never fails a node, each method's final model
as an MLflow model, and only the active profile among the logged parameters.

* :class:`MlflowArtifactDataset`, :class:`MlflowMetricsHistoryDataset`: kedro-mlflow's datasets
  of the same names, except that a failing tracking store does not fail the save: the real output
  is written first, the logging failure is reported and ends the run's tracking
  (:func:`fednuclei.mlflow_store.stop_tracking`), and the node goes on.
* :class:`MlflowUNetDataset`: kedro-mlflow's model dataset for a U-Net
  (:func:`fednuclei.mlflow_models.log_unet`), same behaviour; catalog entries ``<method>.mlflow_model``.
* :class:`MlflowModelHook`: once ``<method>.global_model`` is saved, saves the same model to
  ``<method>.mlflow_model``, so the training template needs no node of its own for it.
* :class:`ActiveProfileParamsHook`: kedro-mlflow logs every parameter a node reads, and the
  settings nodes read all compute profiles; this hook narrows what kedro-mlflow sees to the
  profile the run used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kedro_mlflow.io.artifacts
import kedro_mlflow.io.metrics
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro_mlflow.io.models import MlflowModelTrackingDataset

from fednuclei.mlflow_models import load_unet, log_unet
from fednuclei.mlflow_store import STORE_ERRORS, stop_tracking
from fednuclei.model.unet import UNet

FINAL_MODEL, MLFLOW_MODEL = "global_model", "mlflow_model"
PROFILES, PROFILE = "params:profiles", "params:profile"


@contextmanager
def _store_failure_reported(dataset) -> Iterator[None]:
    """Around a kedro-mlflow dataset's logging: without an active run (tracking off, or stopped after a
    failure) nothing is logged; a store failure stops the run's tracking instead of failing the save."""
    if mlflow.active_run() is None:
        dataset._logging_activated = False  # kedro-mlflow's own switch; logging without a run would start one
    try:
        yield
    except STORE_ERRORS as error:
        dataset._logging_activated = False
        stop_tracking(error, f"{type(dataset).__name__}({dataset._describe()})")


class MlflowArtifactDataset(kedro_mlflow.io.artifacts.MlflowArtifactDataset):
    """kedro-mlflow's artifact dataset (the wrapped dataset's save, then its file logged into the
    active run), where a failing tracking store does not fail the save (see the module docstring)."""

    def __new__(cls, dataset: str | dict, artifact_path: str | None = None, metadata: dict[str, Any] | None = None):
        tracked = super().__new__(cls, dataset=dataset, artifact_path=artifact_path, metadata=metadata)
        tracked.__class__ = _failure_reported(type(tracked))
        return tracked


def _failure_reported(kind: type) -> type:
    """The class kedro-mlflow derives from the wrapped dataset's, with its save under
    :func:`_store_failure_reported`."""

    class FailureReported(kind):
        def _save(self, data: Any) -> None:
            with _store_failure_reported(self):
                super()._save(data)

    FailureReported.__name__ = FailureReported.__qualname__ = kind.__name__  # "Mlflow<dataset>", as kedro-mlflow's
    return FailureReported


class MlflowMetricsHistoryDataset(kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset):
    """kedro-mlflow's metrics dataset, where a failing tracking store does not fail the save."""

    def _save(self, data: dict[str, Any]) -> None:
        with _store_failure_reported(self):
            super()._save(data)


class MlflowUNetDataset(MlflowModelTrackingDataset):
    """A U-Net logged as an MLflow PyTorch model into the active run, with its signature, input
    example, config and fednuclei model file (:mod:`fednuclei.mlflow_models`).

    ``save_args`` go to ``mlflow.pytorch.log_model`` (``name``, and e.g. ``registered_model_name``
    to register every run's model); loading returns the U-Net of the model saved last, or of
    ``load_args: {model_uri: ...}``.
    """

    def __init__(self, *, save_args: dict[str, Any] | None = None, load_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None):
        super().__init__(flavor="mlflow.pytorch", save_args=save_args, load_args=load_args, metadata=metadata)

    def _save(self, model: UNet) -> None:
        with _store_failure_reported(self):
            if self._logging_activated:  # kedro-mlflow switches it off for pipelines it does not track
                self.model_info = log_unet(model, **self._save_args)
                self._last_saved_model_uri = self.model_info.model_uri

    def _load(self) -> UNet:
        return load_unet(self.model_uri)[0]


class MlflowModelHook:
    """Logs each method's final model as an MLflow model: after ``<method>.global_model`` is
    saved, the same U-Net goes to ``<method>.mlflow_model`` when the catalog has that entry and an
    MLflow run is active (kedro-mlflow opens one for every tracked pipeline)."""

    def __init__(self) -> None:
        self._catalog: DataCatalog | None = None

    @hook_impl
    def after_catalog_created(self, catalog: DataCatalog) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        namespace, _, name = dataset_name.rpartition(".")
        target = f"{namespace}.{MLFLOW_MODEL}"
        if name == FINAL_MODEL and self._catalog is not None and target in self._catalog and mlflow.active_run():
            self._catalog.save(target, data)


class ActiveProfileParamsHook:
    """Before kedro-mlflow logs a node's parameters, keeps only the active profile in
    ``params:profiles``, so a run logs ``profiles.<active>.*`` and not every profile.

    Kedro hands all ``before_node_run`` hooks one copy of the node's inputs, so the node itself
    still receives every profile; ``tryfirst`` runs this before kedro-mlflow's hook.
    """

    @hook_impl(tryfirst=True)
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        if PROFILES in inputs and PROFILE in inputs:
            profiles, profile = inputs[PROFILES], inputs[PROFILE]
            inputs[PROFILES] = {profile: profiles[profile]} if profile in profiles else {}
