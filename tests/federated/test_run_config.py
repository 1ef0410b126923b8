"""Run settings at the Flower boundary: a deployment's settings file, and message configs."""

import json
from pathlib import Path

import pytest
import tomli
from flwr.app import ConfigRecord

from fednuclei.federated.run_config import (
    DEPLOYMENT_KEYS,
    message_config,
    read_message_config,
    settings_from_run_config,
)
from fednuclei.run_settings import RunSettings

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_app_config_lists_only_what_a_deployment_sets():
    """`flwr run --run-config` may only override keys the app config declares: those a deployment
    must set, and no default of the settings."""
    config = tomli.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert set(config) == set(DEPLOYMENT_KEYS)
    assert settings_from_run_config(config) == RunSettings()


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_settings_file_names_the_method_and_its_defaults_apply(tmp_path, suffix):
    path = tmp_path / f"fedrgd{suffix}"
    if suffix == ".toml":
        path.write_text('method = "fedrgd"\nclients = ["a", "b"]\nnum_server_rounds = 4\nlr = 1\n')
    else:
        path.write_text(json.dumps({"method": "fedrgd", "clients": ["a", "b"], "num_server_rounds": 4, "lr": 1}))
    settings = settings_from_run_config({"settings": str(path)})
    assert (settings.method, settings.clients, settings.num_server_rounds, settings.lr) == ("fedrgd", ("a", "b"), 4,
                                                                                           1.0)
    assert settings.pixel_share == 0.5  # FedRGD's own default


@pytest.mark.parametrize("content, name, message", [
    ("width = 'eight'\n", "bad.toml", "bad.toml: width: expected int"),
    ("widht = 8\n", "typo.toml", "typo.toml: unknown settings"),
    ("not toml", "broken.toml", "broken.toml"),
    ("{}", "settings.yaml", "use a .toml or .json file"),
])
def test_bad_settings_files_are_named(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        settings_from_run_config({"settings": str(tmp_path / name)})


def test_unknown_run_config_keys_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown run config keys"):
        settings_from_run_config({"num-server-rounds": 3})
    with pytest.raises(ValueError, match="not found"):
        settings_from_run_config({"settings": str(tmp_path / "absent.toml")})


def test_message_config_round_trips_through_a_config_record():
    settings = RunSettings(clients=("a", "b"), supervision=("pixel", "none"), method="fedmix", tau=0.7)
    record = ConfigRecord(message_config(settings, 3))
    assert read_message_config(dict(record)) == (settings, 3)
