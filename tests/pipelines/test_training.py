"""End-to-end method pipelines on the synthetic default, with a two-round budget."""

import os
import re
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from fednuclei import RAY_LOOPBACK_ONLY, TELEMETRY_OFF
from fednuclei.model.files import load_model

NETWORK_GUARD = Path(__file__).resolve().parents[1] / "network_guard"
# Left to the project's defaults; CI also switches MLflow's telemetry off by itself.
TELEMETRY_SWITCHES = {*TELEMETRY_OFF, *RAY_LOOPBACK_ONLY, "CI", "KEDRO_DISABLE_TELEMETRY"}

FAST = "profiles.cpu.num_server_rounds=2"


def _check(completed):
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]


def _mlflow_run(project, method, monkeypatch):
    # MLflow resolves a logged model's artifacts through the global tracking URI, whatever the client's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    client = mlflow.tracking.MlflowClient()
    (experiment,) = [e for e in client.search_experiments() if e.name == "fednuclei"]
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.method = '{method}'")
    return client, run


@pytest.mark.slow
def test_centralized_pipeline_leaves_model_tables_and_an_mlflow_run(kedro_project, monkeypatch):
    _check(kedro_project("run", "--pipeline", "centralized", "--params", FAST))
    check_outputs(kedro_project.path, "centralized", rounds=[1, 2], monkeypatch=monkeypatch)


@pytest.mark.slow
def test_the_default_run_trains_fedavg_calls_no_one_and_prints_a_short_log(kedro_project, tmp_path, monkeypatch):
    """``kedro run`` as a new user runs it: FedAvg on the synthetic default, the fifth hospital
    joining at round 3, with every connection beyond loopback refused (in Ray's processes too) and
    the libraries' telemetry switches left as the project sets them."""
    attempts = tmp_path / "network_attempts.log"
    env = {name: value for name, value in os.environ.items() if name not in TELEMETRY_SWITCHES}
    env.update(FEDNUCLEI_NETWORK_LOG=str(attempts),
               PYTHONPATH=os.pathsep.join([str(NETWORK_GUARD), os.environ.get("PYTHONPATH", "")]))
    completed = kedro_project("run", env=env)
    _check(completed)
    assert not attempts.exists(), attempts.read_text()[:5000]
    check_outputs(kedro_project.path, "fedavg", rounds=[1, 2, 3, 4, 5], monkeypatch=monkeypatch)

    lines = (completed.stdout + completed.stderr).splitlines()
    messages = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines]
    assert len(lines) < 120, "\n".join(lines)
    assert not [m for m in messages if m.startswith("DEBUG")]
    repeated = {m: k for m, k in Counter(messages).items() if k > 1}
    assert not repeated, repeated
    rounds = [m for m in messages if re.match(r"INFO round \d+/\d+: loss ", m)]
    # the first stage, the stage hospital_4 joins, and FedAvg from scratch on every client
    assert sorted(r.split(":")[0] for r in rounds) == sorted(
        [f"INFO round {k}/2" for k in (1, 2)] + [f"INFO round {k}/5" for k in (3, 4, 5, 1, 2, 3, 4, 5)])
    assert all("elapsed" in r for r in rounds) and "left" in rounds[0]


def check_outputs(project, method: str, rounds: list[int], monkeypatch) -> None:
    """The model, tables, images and MLflow run a method's pipeline leaves."""
    data = project / "data"
    model, _ = load_model(data / "06_models" / method / "global_model.pt")
    assert model.config["width"] == 8

    history = pd.read_csv(data / "08_reporting" / method / "training_history.csv")
    assert list(history["round"]) == [1, 2]  # FedAvg's first stage: hospital_4 joins at round 3
    summary = pd.read_csv(data / "08_reporting" / method / "metrics_summary.csv")
    overall = summary[(summary["level"] == "overall")].set_index("metric")["mean"]
    assert overall["dice"] > 0.5
    per_image = pd.read_csv(data / "08_reporting" / method / "metrics_per_image.csv")
    assert set(per_image["split"]) == {"val", "test"}
    assert len(list((data / "07_model_output" / method / "instances").glob("*.png"))) == len(per_image)

    client, run = _mlflow_run(project, method, monkeypatch)
    assert [m.step for m in client.get_metric_history(run.info.run_id, f"{method}.val_dice")] == rounds
    assert f"{method}.test.aji" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, method)}
    assert {f"{method}/model", f"{method}/tables", f"{method}/plots"} <= artifacts


@pytest.mark.slow
def test_local_pipeline_gives_each_client_a_model_and_a_cross_site_matrix(kedro_project, monkeypatch):
    _check(kedro_project("run", "--pipeline", "local", "--params", FAST))
    data = kedro_project.path / "data"
    models = sorted(p.stem for p in (data / "06_models" / "local" / "client_models").glob("*.pt"))
    assert models == ["hospital_0", "hospital_1", "hospital_2", "hospital_3"]
    matrix = pd.read_csv(data / "08_reporting" / "local" / "cross_site_dice.csv").set_index("model")
    assert list(matrix.index) == models and matrix.notna().all().all()
    client, run = _mlflow_run(kedro_project.path, "local", monkeypatch)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "local.hospital_0.val_dice")] == [1, 2]


@pytest.mark.slow
def test_fedmix_pipeline_runs_its_default_budget_with_per_client_rounds_in_mlflow(kedro_project, monkeypatch):
    _check(kedro_project("run", "--pipeline", "fedmix"))
    data = kedro_project.path / "data"
    history = pd.read_csv(data / "08_reporting" / "fedmix" / "training_history.csv")
    assert list(history["round"]) == [1, 2]  # hospital_4 joins at round 3: the incremental stage goes on to 5
    summary = pd.read_csv(data / "08_reporting" / "fedmix" / "metrics_summary.csv")
    assert summary[summary["level"] == "overall"].set_index("metric")["mean"]["dice"] > 0.5

    client, run = _mlflow_run(kedro_project.path, "fedmix", monkeypatch)
    for hospital in ("hospital_0", "hospital_2", "hospital_3"):  # pixel, bbox, points
        for metric in ("weight", "usable_images"):
            steps = client.get_metric_history(run.info.run_id, f"fedmix.clients.{hospital}.{metric}")
            assert [m.step for m in steps] == [1, 2, 3, 4, 5], (hospital, metric)
    weights = [m for i in range(5) for m in client.get_metric_history(run.info.run_id,
                                                                      f"fedmix.clients.hospital_{i}.weight")]
    assert sorted({m.step for m in weights}) == [1, 2, 3, 4, 5]
    for step in range(1, 6):  # hospital_4's weight from round 3 on, when it joins
        assert sum(m.value for m in weights if m.step == step) == pytest.approx(1.0), step
