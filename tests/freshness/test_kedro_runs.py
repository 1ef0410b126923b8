"""``kedro run`` on a copy of the project, tiny synthetic configuration: one full ``compare`` run,
then cheap reruns that change one thing each and check which nodes run and why.

The tests share the project and run in file order: each leaves it as the next one expects.
"""

import ast
import functools
import json
from pathlib import Path

import mlflow
import pytest
from kedro.pipeline import Pipeline

from fednuclei.freshness.manifest import MANIFEST_PATH
from fednuclei.pipeline_registry import register_pipelines

from .project import KedroRun, copy_project, run_kedro, tiny_settings


@functools.cache
def _pipeline(name: str) -> Pipeline:
    return register_pipelines()[name]


def nodes_of(pipeline: str, without: tuple[str, ...] = ()) -> set[str]:
    """Names of the nodes of a registered pipeline, less those of the pipelines ``without``."""
    return {node.name for node in _pipeline(pipeline).nodes} - {
        node.name for name in without for node in _pipeline(name).nodes}


def readers(pipeline: str, parameter: str) -> set[str]:
    """The nodes of ``pipeline`` that read ``parameter``."""
    return {node.name for node in _pipeline(pipeline).nodes if parameter in node.inputs}


def downstream(pipeline: str, nodes: set[str]) -> set[str]:
    """``nodes`` and every node of ``pipeline`` that depends on them."""
    return {node.name for node in _pipeline(pipeline).from_nodes(*nodes).nodes}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with tiny settings (:func:`~tests.freshness.project.tiny_settings`), after one full ``kedro run
    --pipeline compare``. Calling it runs ``kedro <args>`` there and returns a :class:`KedroRun`."""
    path = copy_project(tmp_path_factory.mktemp("project"))
    tiny_settings(path / "conf")

    def kedro(*args: str) -> KedroRun:
        return run_kedro(path, *args)

    kedro.path = path
    kedro.first = kedro("run", "--pipeline", "compare").check()
    return kedro


def _records(project) -> dict:
    return json.loads((project.path / MANIFEST_PATH).read_text())["nodes"]


def _runs(project) -> list:
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project.path / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "fednuclei"]
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_a_rerun_with_nothing_changed_runs_no_node_and_names_the_mlflow_run_it_reused(project):
    registry = project("registry", "list").check()
    rerun = project("run", "--pipeline", "compare").check()
    assert rerun.ran == set()
    assert set(rerun.decisions) == project.first.ran
    assert set(rerun.decisions.values()) == {"fresh, skipped"}
    assert rerun.seconds <= 1.5 * registry.seconds + 3, (rerun.seconds, registry.seconds)
    runs = _runs(project)
    first, latest = runs[0], runs[-1]
    assert latest.data.tags["freshness.reused_runs"] == first.info.run_id
    assert first.info.run_id in latest.data.tags["mlflow.note.content"]
    assert latest.data.metrics == {}


@pytest.mark.slow
def test_a_fedmix_parameter_reruns_fedmix_training_and_what_follows_only(project):
    rerun = project("run", "--pipeline", "compare", "--params", "fedmix.training.tau=0.8").check()
    changed = readers("compare", "params:fedmix.training")
    assert changed and all(name.startswith("fedmix.") for name in changed)
    assert rerun.ran == downstream("compare", changed)
    assert {rerun.decisions[name] for name in changed} == {"stale: parameter params:fedmix.training changed"}
    assert {name for name in rerun.ran if not name.startswith("fedmix.")} == nodes_of(
        "compare", ("data_processing", "augmentation", "training"))  # the comparison itself
    runs = _runs(project)
    assert runs[-1].data.tags["freshness.reused_runs"] == runs[0].info.run_id  # the other methods' results
    assert "mlflow.note.content" not in runs[-1].data.tags  # FedMix was trained in this run


@pytest.mark.slow
def test_a_deleted_output_reruns_its_producer_and_what_depends_on_it(project):
    (project.path / "data" / "08_reporting" / "fedavg" / "metrics_per_image.csv").unlink()
    rerun = project("run", "--pipeline", "fedavg").check()
    (producer,) = [node.name for node in _pipeline("fedavg").nodes if "fedavg.metrics_per_image" in node.outputs]
    assert rerun.ran == downstream("fedavg", {producer})
    assert rerun.decisions[producer] == "stale: output fedavg.metrics_per_image is missing"


@pytest.mark.slow
def test_an_edited_node_function_makes_its_node_stale(project):
    (node,) = [node for node in _pipeline("fedavg").nodes if "fedavg.learning_curves" in node.outputs]
    function = node.func
    source = project.path / "src" / Path(*function.__module__.split(".")).with_suffix(".py")
    lines = source.read_text().splitlines(keepends=True)
    (definition,) = [d for d in ast.parse("".join(lines)).body if getattr(d, "name", None) == function.__name__]
    first = definition.body[-1]  # its last statement: after any docstring
    lines.insert(first.lineno - 1, " " * first.col_offset + "edited = True  # a change of the function's code\n")
    source.write_text("".join(lines))
    rerun = project("run", "--pipeline", "fedavg").check()
    assert rerun.ran == downstream("fedavg", {node.name})
    assert rerun.decisions[node.name] == f"stale: code changed: {function.__module__}:{function.__name__}"


@pytest.mark.slow
def test_an_augmentation_parameter_reruns_augmentation_and_everything_downstream(project):
    rerun = project("run", "--pipeline", "fedavg", "--params", "augmentation.seed=1").check()
    changed = readers("fedavg", "params:augmentation")
    assert rerun.ran == downstream("fedavg", changed)
    assert {rerun.decisions[name] for name in changed} == {"stale: parameter params:augmentation changed"}
    assert {rerun.decisions[name] for name in nodes_of("data_processing")} == {"fresh, skipped"}


@pytest.mark.slow
def test_a_failed_run_leaves_no_record_for_what_it_did_not_finish(project):
    before = _records(project)
    models = project.path / "data" / "06_models" / "fedavg"
    models.rename(models.with_name("fedavg.kept"))
    models.write_text("")  # a file where FedAvg's first node saves its settings: that node fails
    try:
        failed = project("run", "--pipeline", "fedavg", "--params", "augmentation.seed=2")
    finally:
        models.unlink()
        models.with_name("fedavg.kept").rename(models)
    assert failed.returncode != 0 and f"File exists: '{models}'" in failed.log
    after = _records(project)
    for name in readers("fedavg", "params:augmentation"):  # finished before the failure: recorded anew
        assert after[name]["params"] != before[name]["params"], name
    assert not any(name.startswith("fedavg.") for name in after)  # failed or never started: no record
    assert {name: after[name] for name in nodes_of("data_processing")} == {
        name: before[name] for name in nodes_of("data_processing")}
