"""The compare pipeline on the synthetic default, one round per method."""

import mlflow
import pandas as pd
import pytest

from fednuclei.pipelines.compare import COMPARED


@pytest.mark.slow
def test_compare_tables_every_method_overall_and_per_client(kedro_project):
    completed = kedro_project("run", "--pipeline", "compare", "--params", "profiles.cpu.num_server_rounds=1")
    assert completed.returncode == 0, completed.stderr[-6000:]
    table = pd.read_csv(kedro_project.path / "data" / "08_reporting" / "compare" / "metrics_table.csv")
    overall = table[table["level"] == "overall"]
    assert sorted(overall["method"]) == sorted(COMPARED)
    assert overall[["dice", "aji", "pq"]].notna().all().all() and (overall["dice"] > 0).all()
    per_client = table[(table["level"] == "client") & (table["method"] == "fedmix")]
    assert set(per_client["group"]) == {f"hospital_{i}" for i in range(5)}
    assert (kedro_project.path / "data" / "08_reporting" / "compare" / "method_scores.png").is_file()

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{kedro_project.path / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "fednuclei"]
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.method = 'compare'")
    for method in ("fedmix", "fedst", "fedrgd", "fedavg_pixel"):
        assert f"{method}.test.dice" in run.data.metrics, method
    weights = client.get_metric_history(run.info.run_id, "fedmix.clients.hospital_0.weight")
    assert [m.step for m in weights] == [1]
