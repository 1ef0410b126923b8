"""The compare pipeline on the synthetic default, one round per method."""

import mlflow
import pandas as pd
import pytest

from fednuclei.methods import METHODS
from fednuclei.pipelines.compare.nodes import compare_methods


def _scores(dice_by_tile: dict[str, float]) -> pd.DataFrame:
    """Per-image rows of one method: the given test tiles (client = name before "_"), one val tile."""
    return pd.DataFrame([{"tile": tile, "client": tile.split("_")[0], "split": "test", "dice": dice}
                         for tile, dice in dice_by_tile.items()]
                        + [{"tile": "a_val", "client": "a", "split": "val", "dice": 0.0}])


def test_overall_rows_average_the_tiles_every_method_scored():
    # local has no model for the late joiner "c": the overall rows leave c_1 out for both methods.
    table = compare_methods(local=_scores({"a_1": 0.8, "b_1": 0.6}),
                            fedavg=_scores({"a_1": 0.7, "b_1": 0.5, "c_1": 0.1}))
    rows = table.set_index(["method", "level", "group"])
    assert rows.loc[("local", "overall", "all"), "dice"] == pytest.approx(0.7)
    assert rows.loc[("fedavg", "overall", "all"), "dice"] == pytest.approx(0.6)
    assert rows.loc[("fedavg", "overall", "all"), "n_images"] == 2
    assert rows.loc[("fedavg", "client", "c"), "dice"] == pytest.approx(0.1)
    assert ("local", "client", "c") not in rows.index
    assert list(table["method"]) == ["local"] * 3 + ["fedavg"] * 4  # methods in the order given, overall first
    assert list(table["level"])[:3] == ["overall", "client", "client"]


@pytest.mark.slow
def test_compare_tables_every_method_overall_and_per_client(kedro_project):
    # One round each; no incremental round (hospital_4 would join at round 3), so no retraining either.
    completed = kedro_project("run", "--pipeline", "compare", "--params",
                              "profiles.cpu.num_server_rounds=1,profiles.cpu.incremental_rounds=0")
    assert completed.returncode == 0, completed.stderr[-6000:]
    table = pd.read_csv(kedro_project.path / "data" / "08_reporting" / "compare" / "metrics_table.csv")
    overall = table[table["level"] == "overall"]
    assert sorted(overall["method"]) == sorted(METHODS)
    assert overall[["dice", "aji", "pq"]].notna().all().all() and (overall["dice"] > 0).all()
    assert overall["n_images"].nunique() == 1  # every method on the same tiles
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
