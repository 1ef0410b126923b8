"""A Kedro runner that executes only the stale nodes of a pipeline and records each node's
fingerprint once its outputs are saved. ``kedro run`` uses it (:mod:`fednuclei.cli`)."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from fednuclei.freshness.manifest import Manifest
from fednuclei.freshness.planning import Planner, is_parameter

logger = logging.getLogger(__name__)


class FreshnessRunner(SequentialRunner):
    """:class:`~kedro.runner.SequentialRunner` that skips every node whose outputs exist and whose
    fingerprint matches the manifest's record, and runs the rest and everything downstream of them.

    Args:
        is_async: load and save inputs and outputs with threads, as Kedro's runners do.
        rerun_all: run every node, fresh or not (``kedro run --all``); records are still written.
    """

    def __init__(self, is_async: bool = False, rerun_all: bool = False):
        super().__init__(is_async=is_async)
        self._rerun_all = rerun_all

    @property
    def _logger(self) -> logging.Logger:
        """Kedro's runner logs as Kedro's, whatever module subclasses it."""
        return logging.getLogger(SequentialRunner.__module__)

    def run(self, pipeline: Pipeline, catalog, hook_manager=None, run_id: str | None = None,
            only_missing_outputs: bool = False) -> dict[str, Any]:
        """Log for every node of ``pipeline`` whether it is fresh or why it is stale, remove the
        records of the stale ones, and run them with Kedro's sequential runner.

        Returns:
            Kedro's run result: the datasets the nodes that ran output and nothing consumed.

        Raises:
            whatever a node raises; the nodes that did not finish have no record then.
        """
        manifest = Manifest()
        planner = Planner(catalog, manifest)
        decisions = planner.plan(pipeline, self._rerun_all)
        stale = [name for name, (_, reasons) in decisions.items() if reasons]
        for name, (_, reasons) in decisions.items():
            if reasons:
                logger.debug("%s: stale: %s", name, "; ".join(reasons))
            else:
                logger.debug("%s: fresh, skipped", name)
        logger.info("%d of %d nodes stale, %d fresh (records in %s)", len(stale), len(decisions),
                    len(decisions) - len(stale), manifest.path)
        manifest.forget(stale)
        recorder = _Recorder(planner, manifest, {name: decisions[name][0] for name in stale})
        hook_manager = hook_manager or _create_hook_manager()
        hook_manager.register(recorder)
        try:
            return super().run(Pipeline([node for node in pipeline.nodes if node.name in stale]), catalog,
                               hook_manager, run_id, only_missing_outputs)
        finally:
            hook_manager.unregister(recorder)


class _Recorder:
    """Hooks registered for one run: note the inputs a node read, and record its fingerprint
    once its last output is saved."""

    def __init__(self, planner: Planner, manifest: Manifest, fingerprints: dict[str, dict]):
        self._planner = planner
        self._manifest = manifest
        self._fingerprints = fingerprints
        self._inputs: dict[str, dict[str, str | None]] = {}
        self._unsaved: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # outputs may be saved from several threads (is_async)

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        signer = self._planner.signer
        self._inputs[node.name] = {name: signer.current(name) for name in node.inputs if not is_parameter(name)}
        self._unsaved[node.name] = set(node.outputs)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Node) -> None:
        with self._lock:
            unsaved = self._unsaved.get(node.name)
            if unsaved is None or dataset_name not in unsaved:
                return
            unsaved.discard(dataset_name)
            if unsaved:
                return
            outputs = {name: self._planner.signer.written(name) for name in node.outputs}
            self._manifest.record(node.name, {**self._fingerprints[node.name], "inputs": self._inputs.pop(node.name),
                                              "outputs": outputs, "mlflow_run": _active_mlflow_run()})


def _active_mlflow_run() -> str | None:
    """The MLflow run the node logged to, if the project's MLflow plugin started one."""
    mlflow = sys.modules.get("mlflow")  # not imported here: runs without MLflow stay without it
    run = mlflow.active_run() if mlflow is not None else None
    return run.info.run_id if run is not None else None
