"""A failing MLflow tracking store costs the tracking, never the outputs; runs are never left RUNNING
or recorded FINISHED when they are not."""

import sqlite3

import mlflow
import pytest
from kedro_mlflow.framework.hooks import mlflow_hook

from fednuclei.mlflow_store import mark_abandoned_runs, project_store_uri
from fednuclei.mlflow_tracking import MlflowArtifactDataset, MlflowMetricsHistoryDataset
from fednuclei.model.unet import UNet
from tests.sample_data import killed_mlflow_run


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A throw-away SQLite tracking store, and kedro-mlflow's hook state as a tracked run has it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # runs go to its Default experiment: no experiment id outlives the test
    monkeypatch.setattr(mlflow_hook, "_is_mlflow_enabled", True, raising=False)
    monkeypatch.setattr(mlflow_hook, "run_id", None, raising=False)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_a_relative_sqlite_store_is_the_project_folders():
    assert project_store_uri("sqlite:///mlflow.db", "/srv/project") == "sqlite:////srv/project/mlflow.db"
    assert project_store_uri("sqlite:///tracking/mlflow.db", "/srv/project") == "sqlite:////srv/project/tracking/mlflow.db"
    for kept in ("sqlite:////data/mlflow.db", "sqlite:///:memory:", "http://tracking:5000", "mlruns", None):
        assert project_store_uri(kept, "/srv/project") == kept


@pytest.mark.slow
def test_runs_left_running_by_a_killed_process_are_marked_killed(tmp_path, store, caplog):
    project = str(tmp_path)
    killed = killed_mlflow_run(store, tmp_path)
    client = mlflow.MlflowClient()
    other_project = mlflow.start_run(tags={"project_path": "/elsewhere"}).info.run_id  # not this project's
    mlflow.end_run()
    client.update_run(other_project, status="RUNNING")
    assert client.get_run(killed).info.status == "RUNNING"

    assert mark_abandoned_runs(project) == [killed]
    assert client.get_run(killed).info.status == "KILLED"
    assert client.get_run(other_project).info.status == "RUNNING"
    assert f"MLflow run {killed}" in caplog.text and "left RUNNING by a process that ended without closing it" in caplog.text


def test_a_store_failing_mid_run_costs_the_tracking_not_the_outputs(tmp_path, store, caplog):
    client = mlflow.MlflowClient()
    run = mlflow.start_run().info.run_id
    model_file = tmp_path / "06_models" / "global_model.pt"
    model = MlflowArtifactDataset(dataset={"type": "fednuclei.datasets.ModelDataset", "filepath": str(model_file)},
                                  artifact_path="fedavg/model")
    metrics = MlflowMetricsHistoryDataset(prefix="fedavg")
    model.save(UNet(width=4, depth=2, groups=2))
    assert [a.path for a in client.list_artifacts(run, "fedavg/model")] == ["fedavg/model/global_model.pt"]

    # The store breaks: its metrics table is gone (writes fail at once; a locked store fails after 20 s).
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        connection.execute("ALTER TABLE metrics RENAME TO metrics_gone")
    metrics.save({"fedavg.val_dice": [{"value": 0.9, "step": 1}]})
    assert f"MLflow tracking store {store} failed while logging MlflowMetricsHistoryDataset" in caplog.text
    assert mlflow.active_run() is None and client.get_run(run).info.status == "FAILED"
    assert mlflow_hook.run_id is None and not mlflow_hook._is_mlflow_enabled  # no parameters logged for later nodes

    model_file.unlink()
    model.save(UNet(width=4, depth=2, groups=2))  # still written, logged nowhere: no run is started for it
    assert model_file.is_file()
    assert [r.info.run_id for r in client.search_runs([client.get_run(run).info.experiment_id])] == [run]
