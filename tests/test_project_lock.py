"""The project lock: one run at a time per project folder, between real processes."""

import signal
import subprocess
import sys

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from fednuclei.hooks import ParameterCheckHook, ProjectLockHook
from fednuclei.parameter_checks import ParameterError
from fednuclei.project_lock import LOCK_FILE, ProjectLock, ProjectLocked

HOLDER = """
import sys, time
from fednuclei.project_lock import ProjectLock
lock = ProjectLock(sys.argv[1]).acquire()  # held as long as the object lives
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of the project at ``tmp_path``."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / LOCK_FILE)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_with_the_lock_file_and_the_holders_pid(tmp_path, holder):
    with pytest.raises(ProjectLocked, match=f"{tmp_path / LOCK_FILE} is held by PID {holder.pid} "):
        ProjectLock(tmp_path / LOCK_FILE).acquire()


def test_a_killed_holder_leaves_the_project_free(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with ProjectLock(tmp_path / LOCK_FILE) as lock:
        assert lock.held
    assert not lock.held


def _run_hooks(project, parameters: dict, pipeline: Pipeline):
    hooks = _create_hook_manager()
    hooks.register(ProjectLockHook())
    hooks.register(ParameterCheckHook())
    hooks.hook.before_pipeline_run(run_params={"project_path": str(project)}, pipeline=pipeline,
                                   catalog=DataCatalog({"parameters": MemoryDataset(parameters)}))


def test_a_run_refused_at_its_start_gives_the_lock_back(tmp_path):
    pipeline = Pipeline([Node(lambda patches: None, "params:patches", None, name="cut")])
    with pytest.raises(ParameterError, match="patches.stride"):
        _run_hooks(tmp_path, {"patches": {"size": 64, "stride": 128}}, pipeline)
    with ProjectLock(tmp_path / LOCK_FILE):  # free again
        pass


def test_a_run_started_while_another_holds_the_lock_stops_naming_it(tmp_path, holder):
    with pytest.raises(ProjectLocked, match=f"PID {holder.pid} "):
        _run_hooks(tmp_path, {}, Pipeline([]))
