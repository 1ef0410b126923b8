"""Fixtures of the federated tests: client data folders, tiny settings, Flower's task identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.federated.sample_data import tiny_settings as _tiny_settings
from tests.federated.sample_data import write_client_data

# No network from tests: Flower reads this once, when flwr is first imported.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


@pytest.fixture
def client_data_root(tmp_path) -> Path:
    """A tmp folder holding the two clients' data (see :func:`write_client_data`)."""
    write_client_data(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_settings():
    """:func:`tests.federated.sample_data.tiny_settings`: ``tiny_settings(base, **changes)``."""
    return _tiny_settings


@pytest.fixture
def task_identity(monkeypatch):
    """Let tests create Flower Messages outside a run: Message() stamps the sender from the
    process's task identity, which Flower's runtimes set (run_simulation sets the same dummy one)."""
    from flwr.supercore.task_identity import TaskIdentity

    for attribute, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attribute, value)
