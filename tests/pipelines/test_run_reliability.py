"""``kedro run`` survives failures, reports them and loses nothing: bad parameters and configurations
stop a run before it replaces any output, a killed write's leftovers go at the next run, two runs
at once do not mix, and a failing MLflow store costs the tracking, never the results.

On a copy of the project with tiny settings; the tests share it and run in file order."""

import signal
import sqlite3
import time

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

from fednuclei.project_lock import LOCK_FILE
from tests.freshness.project import StartedKedro, copy_project, run_kedro, tiny_settings
from tests.sample_data import decompression_bomb, killed_mlflow_run, killed_write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = copy_project(tmp_path_factory.mktemp("project"))
    tiny_settings(path / "conf")
    return path


def outputs(project) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``data/`` (inode, modification time, size), less the lock and
    the freshness records (a failed run forgets the records of the nodes it was to run)."""
    ignored = {project / LOCK_FILE, project / "data" / "freshness.json"}
    return {str(path.relative_to(project)): (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size)
            for path in (project / "data").rglob("*") if path not in ignored}


def store(project) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs(project) -> list:
    client = store(project)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"])


def test_a_bad_parameter_stops_the_run_before_its_first_node(project):
    run = run_kedro(project, "run", "--pipeline", "fedavg", "--params", "fedavg.training.lr=-0.001")
    assert run.returncode == 1
    assert "ParameterError: parameter fedavg.training: lr must be finite and > 0, got -0.001" in run.log
    assert "Running node" not in run.log  # nor Ray, nor any MLflow run
    assert [path for path in (project / "data").rglob("*") if path.is_file()] == [project / LOCK_FILE]
    assert runs(project) == []


def test_the_next_run_removes_what_a_killed_write_left(project):
    leftovers = [killed_write(project / "data" / "03_primary" / "tiles"),
                 killed_write(project / "data" / "freshness.json", "file")]
    run = run_kedro(project, "run", "--pipeline", "data_processing").check()
    assert not any(path.exists() for path in leftovers)
    assert "Removed 2 leftovers of interrupted writes: " in run.log
    assert all(str(path.relative_to(project)) in run.log for path in leftovers)


@pytest.mark.parametrize(("params", "clients", "message"), [
    ("patches.size=512", None, "parameter patches.size (512) is larger than 25 tile(s): synthetic_h0_000 of client "
                               "'hospital_0' (128x128)"),
    (None, {1: {"groups": ["hospital_9"]}}, "client 'hospital_1': groups ['hospital_9'] match no synthetic tile"),
    (None, {2: {"supervision": "boxes"}}, "parameter clients[2] (hospital_2): unknown supervision level 'boxes'"),
    # conf/local sets parameters, so --params replaces the whole of splits (the KeyError 'val' of old)
    ("splits.train=0", None, "parameter splits.val is missing"),
    ("splits.train=0,splits.val=0.5,splits.test=0.5,splits.seed=0", None, "parameter splits.train must be > 0"),
    ("splits.train=0.6,splits.val=0.9,splits.test=0.4,splits.seed=0", None,
     "parameters splits.train + splits.val + splits.test must add up to 1, got 0.6 + 0.9 + 0.4 = 1.9"),
])
def test_a_configuration_that_does_not_fit_leaves_every_output_as_it_was(project, params, clients, message):
    before = outputs(project)
    local = project / "conf" / "local" / "parameters_data_processing.yml"
    if clients:
        configured = yaml.safe_load((project / "conf" / "base" / "parameters_data_processing.yml").read_text())
        for index, change in clients.items():
            configured["clients"][index].update(change)
        local.write_text(yaml.safe_dump({"clients": configured["clients"]}))
    try:
        # --all: every node runs, as after new raw data (ingestion would be skipped as fresh otherwise)
        run = run_kedro(project, "run", "--pipeline", "data_processing", "--all",
                        *(["--params", params] if params else []))
    finally:
        local.unlink(missing_ok=True)
    assert run.returncode == 1 and message in run.log, run.log[-3000:]
    assert run.ran == set()
    assert outputs(project) == before  # nothing replaced, nothing left beside


def test_a_decompression_bomb_in_a_tnbc_slide_stops_data_processing_naming_it(project):
    before = outputs(project)
    bomb = decompression_bomb(project / "data" / "01_raw" / "tnbc" / "Slide_01" / "01_1.png", 50000, 50000)
    (bomb.parent.parent / "GT_01").mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(bomb.parent.parent / "GT_01" / "01_1.png")
    catalog = project / "conf" / "local" / "catalog.yml"
    tiny = catalog.read_text()
    sources = yaml.safe_load(tiny)
    sources["raw_tiles"]["sources"]["tnbc"] = {"format": "tnbc", "path": "data/01_raw/tnbc"}
    catalog.write_text(yaml.safe_dump(sources))
    try:
        run = run_kedro(project, "run", "--pipeline", "data_processing")
    finally:
        catalog.write_text(tiny)
    assert run.returncode == 1 and f"image {bomb} declares an image too large to read" in run.log
    assert run.ran == set()
    assert {k: v for k, v in outputs(project).items() if "01_raw" not in k} == before


def test_a_second_run_at_once_stops_naming_the_lock_and_the_first_runs_store_is_the_projects(project):
    abandoned = killed_mlflow_run(f"sqlite:///{project / 'mlflow.db'}", project)  # a run killed earlier
    (project / "notebooks").mkdir()
    started = StartedKedro(project, "run", "--pipeline", "centralized", "--all", cwd=project / "notebooks")
    lock = project / LOCK_FILE
    while not (lock.is_file() and "PID" in lock.read_text()):
        assert started.process.poll() is None, started.log[-3000:]
        time.sleep(0.2)
    second = run_kedro(project, "run", "--pipeline", "data_processing")
    first = started.wait().check()

    assert second.returncode == 1 and second.ran == set()
    assert f"ProjectLocked: {project / LOCK_FILE} is held by PID {started.process.pid} " in second.log
    assert not (project / "notebooks" / "mlflow.db").exists()
    latest, killed = runs(project)
    assert (latest.info.run_name, latest.info.status) == ("centralized", "FINISHED")
    assert (killed.info.run_id, killed.info.status) == (abandoned, "KILLED")
    assert f"MLflow run {abandoned}" in first.log and "marked KILLED" in first.log


def test_an_interrupted_run_is_recorded_killed(project):
    settings = project / "data" / "06_models" / "centralized" / "run_settings.json"
    written = settings.stat().st_mtime_ns
    run = StartedKedro(project, "run", "--pipeline", "centralized", "--all")
    while settings.stat().st_mtime_ns == written:  # training now
        assert run.process.poll() is None, run.log[-3000:]
        time.sleep(0.05)
    run.process.send_signal(signal.SIGINT)  # Ctrl-C: Kedro's end hooks do not run, MLflow would end it FINISHED
    assert run.wait().returncode != 0
    assert runs(project)[0].info.status == "KILLED"


def test_a_store_locked_mid_run_costs_the_tracking_not_the_outputs(project):
    model = project / "data" / "06_models" / "centralized" / "global_model.pt"
    settings = project / "data" / "06_models" / "centralized" / "run_settings.json"
    written = settings.stat().st_mtime_ns
    run = StartedKedro(project, "run", "--pipeline", "centralized", "--all")
    while settings.stat().st_mtime_ns == written:  # the run is past its settings node: training next
        assert run.process.poll() is None, run.log[-3000:]
        time.sleep(0.05)
    locked_at = time.time_ns()
    with sqlite3.connect(project / "mlflow.db", isolation_level=None) as other_writer:
        other_writer.execute("BEGIN IMMEDIATE")  # what another process writing to the store holds
        while "failed while logging" not in run.log and run.process.poll() is None:
            time.sleep(0.2)
        other_writer.execute("ROLLBACK")
    run = run.wait().check()

    assert f"MLflow tracking store sqlite:///{project / 'mlflow.db'} failed while logging" in run.log
    assert model.stat().st_mtime_ns > locked_at
    for table in ("training_history.csv", "metrics_summary.csv", "metrics_per_image.csv"):
        assert (project / "data" / "08_reporting" / "centralized" / table).stat().st_mtime_ns > locked_at
    assert runs(project)[0].info.status == "FAILED"


def test_a_corrupt_store_is_named_and_stops_only_tracked_pipelines(project):
    (project / "mlflow.db").write_bytes(b"\0" * 4096)
    untracked = run_kedro(project, "run", "--pipeline", "data_processing", "--all").check()
    problem = f"MLflow tracking store sqlite:///{project / 'mlflow.db'} cannot be used"
    assert f"{problem} ((sqlite3.DatabaseError) file is not a database); pipeline data_processing is not tracked" \
           in untracked.log
    before = outputs(project)
    tracked = run_kedro(project, "run", "--pipeline", "centralized", "--all")
    assert tracked.returncode == 1 and "TrackingStoreError: " + problem in tracked.log
    assert tracked.ran == set() and outputs(project) == before
