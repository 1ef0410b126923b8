"""End-to-end method pipelines on the synthetic default, with a two-round budget."""

import mlflow
import pandas as pd
import pytest

from fednuclei.model.files import load_model

FAST = "profiles.cpu.num_server_rounds=2"


def _check(completed):
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]


def _mlflow_run(project, method):
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "fednuclei"]
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.method = '{method}'")
    return client, run


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fedavg", "centralized"])
def test_method_pipeline_leaves_model_tables_and_an_mlflow_run(kedro_project, method):
    _check(kedro_project("run", "--pipeline", method, "--params", FAST))
    data = kedro_project.path / "data"
    model, _ = load_model(data / "06_models" / method / "global_model.pt")
    assert model.config["width"] == 8

    history = pd.read_csv(data / "08_reporting" / method / "training_history.csv")
    assert list(history["round"]) == [1, 2]
    summary = pd.read_csv(data / "08_reporting" / method / "metrics_summary.csv")
    overall = summary[(summary["level"] == "overall")].set_index("metric")["mean"]
    assert overall["dice"] > 0.5
    per_image = pd.read_csv(data / "08_reporting" / method / "metrics_per_image.csv")
    assert set(per_image["split"]) == {"val", "test"}
    assert len(list((data / "07_model_output" / method / "instances").glob("*.png"))) == len(per_image)

    client, run = _mlflow_run(kedro_project.path, method)
    # FedAvg's rounds go on after hospital_4 joins (incremental stage, rounds 3 and 4)
    rounds = [1, 2, 3, 4] if method == "fedavg" else [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, f"{method}.val_dice")] == rounds
    assert f"{method}.test.aji" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, method)}
    assert {f"{method}/model", f"{method}/tables", f"{method}/plots"} <= artifacts


@pytest.mark.slow
def test_local_pipeline_gives_each_client_a_model_and_a_cross_site_matrix(kedro_project):
    _check(kedro_project("run", "--pipeline", "local", "--params", FAST))
    data = kedro_project.path / "data"
    models = sorted(p.stem for p in (data / "06_models" / "local" / "client_models").glob("*.pt"))
    assert models == ["hospital_0", "hospital_1", "hospital_2", "hospital_3"]
    matrix = pd.read_csv(data / "08_reporting" / "local" / "cross_site_dice.csv").set_index("model")
    assert list(matrix.index) == models and matrix.notna().all().all()
    client, run = _mlflow_run(kedro_project.path, "local")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "local.hospital_0.val_dice")] == [1, 2]


@pytest.mark.slow
def test_fedmix_pipeline_runs_its_default_budget_with_per_client_rounds_in_mlflow(kedro_project):
    _check(kedro_project("run", "--pipeline", "fedmix"))
    data = kedro_project.path / "data"
    history = pd.read_csv(data / "08_reporting" / "fedmix" / "training_history.csv")
    assert list(history["round"]) == [1, 2]  # hospital_4 joins at round 3: the incremental stage goes on to 5
    summary = pd.read_csv(data / "08_reporting" / "fedmix" / "metrics_summary.csv")
    assert summary[summary["level"] == "overall"].set_index("metric")["mean"]["dice"] > 0.5

    client, run = _mlflow_run(kedro_project.path, "fedmix")
    for hospital in ("hospital_0", "hospital_2", "hospital_3"):  # pixel, bbox, points
        for metric in ("weight", "usable_images"):
            steps = client.get_metric_history(run.info.run_id, f"fedmix.clients.{hospital}.{metric}")
            assert [m.step for m in steps] == [1, 2, 3, 4, 5], (hospital, metric)
    weights = [m for i in range(5) for m in client.get_metric_history(run.info.run_id,
                                                                      f"fedmix.clients.hospital_{i}.weight")]
    assert sorted({m.step for m in weights}) == [1, 2, 3, 4, 5]
    for step in range(1, 6):  # hospital_4's weight from round 3 on, when it joins
        assert sum(m.value for m in weights if m.step == step) == pytest.approx(1.0), step
