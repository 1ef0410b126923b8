"""`kedro viz build`: the static Kedro-Viz site lists every registered pipeline."""

import json

import pytest

from fednuclei.pipeline_registry import register_pipelines


@pytest.mark.slow
def test_kedro_viz_build_lists_every_registered_pipeline(kedro_project):
    completed = kedro_project("viz", "build")
    assert completed.returncode == 0, completed.stderr[-6000:]
    api = kedro_project.path / "build" / "api"
    listed = {pipeline["id"] for pipeline in json.loads((api / "main").read_text())["pipelines"]}
    assert listed == set(register_pipelines())
    for name in listed:  # each pipeline's own graph, which the site loads when it is picked
        graph = json.loads((api / "pipelines" / name).read_text())
        assert graph["nodes"] and graph["selected_pipeline"] == name
