"""FreshnessRunner in this process, on a small pipeline of JSON files: which nodes run, and what
the manifest records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_datasets.json import JSONDataset

from fednuclei.freshness.manifest import MANIFEST_PATH
from fednuclei.freshness.runner import FreshnessRunner

FILES = ("numbers", "doubled", "total", "report", "count")


def double(numbers, factor):
    return [n * factor for n in numbers]


def add_up(doubled, fail):
    if fail:
        raise RuntimeError("add_up failed on purpose")
    return sum(doubled)


def report(total):
    return {"total": total}


def count(numbers, label):
    return {label: len(numbers)}


def pipeline(middle: str = "doubled") -> Pipeline:
    return Pipeline([
        Node(double, ["numbers", "params:factor"], middle, name="double"),
        Node(add_up, [middle, "params:fail"], "total", name="add_up"),
        Node(report, "total", "report", name="report"),
        Node(count, ["numbers", "params:label"], "count", name="count"),
    ])


class _NodesThatRan:
    def __init__(self):
        self.names = []

    @hook_impl
    def before_node_run(self, node):
        self.names.append(node.name)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with ``data/numbers.json``; ``project(**changes)`` runs the pipeline there (with
    another parameter value, a memory dataset in the middle, other save options of ``total``)
    and returns the names of the nodes that ran."""
    monkeypatch.chdir(tmp_path)  # the manifest, like the catalog, resolves against the project folder
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.json").write_text("[1, 2, 3]")

    def run(rerun_all=False, middle="doubled", save_args=None, factor=2, fail=False, label="n"):
        catalog = DataCatalog({name: JSONDataset(filepath=f"data/{name}.json",
                                                 save_args=save_args if name == "total" else None)
                               for name in FILES})
        for name, value in {"factor": factor, "fail": fail, "label": label}.items():
            catalog[f"params:{name}"] = value
        hooks, ran = _create_hook_manager(), _NodesThatRan()
        hooks.register(ran)
        FreshnessRunner(rerun_all=rerun_all).run(pipeline(middle), catalog, hooks)
        return sorted(ran.names)

    run.path = tmp_path
    return run


def _records(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_PATH).read_text())["nodes"]


def test_a_second_run_with_nothing_changed_runs_nothing_and_all_runs_everything(project):
    assert project() == ["add_up", "count", "double", "report"]
    assert project() == []
    assert project(rerun_all=True) == ["add_up", "count", "double", "report"]
    assert project() == []


def test_a_parameter_reruns_the_nodes_that_read_it_and_their_downstream_only(project):
    project()
    assert project(factor=3) == ["add_up", "double", "report"]
    assert json.loads((project.path / "data" / "report.json").read_text()) == {"total": 18}
    assert project(factor=3, label="size") == ["count"]


def test_a_deleted_output_reruns_its_producer_and_what_depends_on_it(project):
    project()
    (project.path / "data" / "total.json").unlink()
    assert project() == ["add_up", "report"]


def test_changed_input_file_or_output_settings_make_their_nodes_stale(project):
    project()
    (project.path / "data" / "numbers.json").write_text("[1, 2, 3, 4]")
    assert project() == ["add_up", "count", "double", "report"]
    assert project(save_args={"indent": 1}) == ["add_up", "report"]  # the catalog entry of `total` changed
    (project.path / "data" / "total.json").write_text("7")  # edited by hand: not what add_up wrote
    assert project(save_args={"indent": 1}) == ["add_up", "report"]


def test_a_memory_dataset_never_counts_as_fresh(project, caplog):
    assert project(middle="in_memory") == ["add_up", "count", "double", "report"]
    with caplog.at_level("DEBUG", logger="fednuclei.freshness"):
        assert project(middle="in_memory") == ["add_up", "double", "report"]
    assert "double: stale: output in_memory is held in memory only" in caplog.text
    assert "count: fresh, skipped" in caplog.text


def test_a_failed_run_leaves_no_record_for_the_nodes_it_did_not_finish(project):
    project()
    before = _records(project.path)
    with pytest.raises(RuntimeError, match="on purpose"):
        project(factor=3, fail=True)
    after = _records(project.path)
    assert after["double"]["params"] != before["double"]["params"]  # finished: recorded anew
    assert "add_up" not in after and "report" not in after  # not finished: no record
    assert after["count"] == before["count"]
    assert project(factor=3) == ["add_up", "report"]


KILLED_RUN = """
import os, sys
sys.path.insert(0, {repo!r})
from tests.freshness.test_runner import *
from tests.freshness.test_runner import _create_hook_manager

def add_up_killed(doubled, fail):
    os._exit(9)  # killed: no exception, no clean-up

nodes = [Node(add_up_killed, n.inputs, n.outputs, name=n.name) if n.name == "add_up" else n for n in pipeline().nodes]
catalog = DataCatalog({{name: JSONDataset(filepath=f"data/{{name}}.json") for name in FILES}})
for name, value in {{"factor": 5, "fail": False, "label": "n"}}.items():
    catalog[f"params:{{name}}"] = value
FreshnessRunner().run(Pipeline(nodes), catalog, _create_hook_manager())
"""


def test_a_killed_run_leaves_no_record_for_the_nodes_it_did_not_finish(project):
    project()
    script = project.path / "killed_run.py"
    script.write_text(KILLED_RUN.format(repo=str(Path(__file__).parents[2])))
    killed = subprocess.run([sys.executable, str(script)], cwd=project.path, capture_output=True, text=True,
                            check=False)
    assert killed.returncode == 9, killed.stderr[-3000:]
    records = _records(project.path)
    assert "double" in records and "add_up" not in records and "report" not in records
    assert (project.path / "data" / "total.json").is_file()  # an old output, no longer claimed fresh
    assert project(factor=5) == ["add_up", "report"]
