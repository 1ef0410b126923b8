"""Shared fixtures: small synthetic tiles and client folders, tiny run settings, and a throw-away
copy of the Kedro project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fednuclei.data.synthetic import generate_synthetic_tiles
from tests.sample_data import tiny_settings as _tiny_settings
from tests.sample_data import write_client_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_data_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture(scope="session")
def synthetic_tiles():
    """Three simulated hospitals, five 64x64 tiles each, exact instances."""
    return generate_synthetic_tiles(n_hospitals=3, tiles_per_hospital=5, size=64, seed=0, nuclei_per_tile=(4, 10))


@pytest.fixture
def kedro_project(tmp_path):
    """A copy of the project's configuration in a temporary folder, with empty data layers.

    Returns a function that runs ``kedro`` there and returns the completed process.
    """
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / ".telemetry", tmp_path)
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "src").mkdir()  # Kedro insists on a source folder; the installed package is used
    for layer in ("01_raw", "02_augmented", "03_primary", "04_feature", "05_model_input", "08_reporting"):
        (tmp_path / "data" / layer).mkdir(parents=True)
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``kedro <args>`` there, in this environment (or ``env``)."""
        kedro = Path(sys.executable).with_name("kedro")
        return subprocess.run([str(kedro), *args], cwd=tmp_path, env=os.environ if env is None else env,
                              capture_output=True, text=True)

    run.path = tmp_path
    return run


@pytest.fixture
def client_data_root(tmp_path) -> Path:
    """A tmp folder holding the two clients' data (see :func:`write_client_data`)."""
    write_client_data(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_settings():
    """:func:`tests.sample_data.tiny_settings`: ``tiny_settings(base, **changes)``."""
    return _tiny_settings


@pytest.fixture
def task_identity(monkeypatch):
    """Let tests create Flower Messages outside a run: Message() stamps the sender from the
    process's task identity, which Flower's runtimes set (run_simulation sets the same dummy one)."""
    from flwr.supercore.task_identity import TaskIdentity

    for attribute, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attribute, value)
