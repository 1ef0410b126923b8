"""Signatures of catalog entries: what a node's input or output holds now, or None when it cannot
count as fresh.

* Parameters (``params:...``): a hash of their value.
* A dataset that declares ``signature()`` (the raw sources): what it returns.
* A dataset on the local disk (``_filepath`` or ``_path``, the latest version of a versioned one,
  through ``CachedDataset`` and kedro-mlflow's artifact wrapper): the signature of its file or
  folder (:mod:`fednuclei.freshness.files`) with its class and settings (load and save options),
  so a changed catalog entry counts as a change too.
* An MLflow metrics dataset: the MLflow run it was logged to, for as long as that run exists,
  is not deleted and holds the metrics.
* Anything else (memory datasets, remote storage): None, never fresh.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractVersionedDataset, CachedDataset, DatasetError, MemoryDataset

from fednuclei.freshness.files import digest, path_signature

_LOGGED = "mlflow:"
_WHERE_KEYS = ("filepath", "path", "version", "run_id")  # signed through the path itself


def unwrap(dataset: Any) -> Any:
    """The dataset that holds the data, inside ``CachedDataset`` wrappers."""
    while isinstance(dataset, CachedDataset):
        dataset = dataset._dataset
    return dataset


def _is_mlflow_metrics(dataset: Any) -> bool:
    return any(kind.__module__.startswith("kedro_mlflow.io.metrics") for kind in type(dataset).__mro__)


def _local_path(dataset: Any) -> Path | None:
    """The file or folder a dataset reads, when it is on the local disk; None otherwise."""
    if getattr(dataset, "_protocol", "file") not in ("file", "local"):
        return None
    if isinstance(dataset, AbstractVersionedDataset):
        try:
            return Path(str(dataset._get_load_path()))
        except DatasetError:  # versioned, and no version saved yet
            return None
    for attribute in ("_filepath", "_path"):
        if getattr(dataset, attribute, None) is not None:
            return Path(str(getattr(dataset, attribute)))
    return None


def _relative(path: Path) -> str:
    """``path`` relative to the project folder, so that moving the project changes no signature."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Signer:
    """Signs the entries of one catalog; remembers the MLflow runs it has looked up."""

    def __init__(self, catalog):
        self._catalog = catalog
        self._mlflow_runs: dict[str, Any] = {}

    def current(self, name: str, recorded: str | None = None) -> str | None:
        """The signature of ``name`` now; for an MLflow metrics dataset, ``recorded`` (the run it
        was logged to) while that run still holds its metrics."""
        if name.startswith("params:") or name == "parameters":
            value = self._catalog.get(name).load()
            return f"value:{digest(json.dumps(value, sort_keys=True, default=repr))}"
        dataset = unwrap(self._catalog.get(name, fallback_to_runtime_pattern=True))
        if _is_mlflow_metrics(dataset):
            return recorded if recorded and self._holds_metrics(recorded, dataset) else None
        if hasattr(dataset, "signature"):
            return f"own:{digest(json.dumps(dataset.signature(), sort_keys=True, default=str))}"
        path = None if isinstance(dataset, MemoryDataset) else _local_path(dataset)
        where = path_signature(path) if path is not None else None
        if where is None:
            return None
        settings = {key: value for key, value in dataset._describe().items() if key not in _WHERE_KEYS}
        described = [type(dataset).__qualname__, _relative(path), settings]
        return f"{where}:{digest(json.dumps(described, sort_keys=True, default=str))}"

    def written(self, name: str) -> str | None:
        """The signature of ``name`` right after it was saved: for an MLflow metrics dataset the
        run it was just logged to (None when logging is off)."""
        dataset = unwrap(self._catalog.get(name, fallback_to_runtime_pattern=True))
        if _is_mlflow_metrics(dataset):
            run_id = dataset.run_id if dataset._logging_activated else None
            return f"{_LOGGED}{run_id}" if run_id else None
        return self.current(name)

    def absence(self, name: str) -> str:
        """Why ``name`` has no signature, for the log."""
        dataset = unwrap(self._catalog.get(name, fallback_to_runtime_pattern=True))
        if dataset is None or isinstance(dataset, MemoryDataset):
            return f"{name} is held in memory only"
        if _is_mlflow_metrics(dataset):
            return f"{name} is not in the MLflow run it was logged to"
        if _local_path(dataset) is None:
            return f"{name} is not on the local disk, so it is never taken as unchanged"
        return f"{name} is missing"

    def _holds_metrics(self, recorded: str, dataset: Any) -> bool:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        run_id = recorded.removeprefix(_LOGGED)
        if run_id not in self._mlflow_runs:
            try:
                self._mlflow_runs[run_id] = MlflowClient().get_run(run_id)
            except MlflowException:  # deleted for good, or another tracking store
                self._mlflow_runs[run_id] = None
        run = self._mlflow_runs[run_id]
        if run is None or run.info.lifecycle_stage != "active":
            return False
        name = getattr(dataset, "_prefix", None) or getattr(dataset, "key", None)
        return any(key == name or key.startswith(f"{name}.") for key in run.data.metrics)
