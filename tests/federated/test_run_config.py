"""Run settings at the Flower boundary: a deployment's settings file, and message configs."""

import json
from pathlib import Path

import pytest
import tomli
from flwr.app import ConfigRecord

from fednuclei.federated.run_config import (
    CLIENT_FIELDS,
    DEPLOYMENT_KEYS,
    client_config,
    read_client_config,
    settings_from_run_config,
)
from fednuclei.methods.common import round_lr
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


def test_a_client_config_carries_its_own_name_and_level_and_the_rounds_training_settings_only():
    settings = RunSettings(clients=("a", "b"), supervision=("pixel", "bbox"), method="fedmix", tau=0.7,
                           lr_schedule="cosine", num_server_rounds=4, data_path="/server/data",
                           checkpoint_dir="/server/checkpoints", data_version="abc123")
    config = dict(ConfigRecord(client_config(settings, 3, "b")))
    assert set(config) == {*CLIENT_FIELDS, "client", "supervision", "server-round"}
    assert (config["client"], config["supervision"], config["lr"]) == ("b", "bbox", round_lr(settings, 3))
    received, server_round = read_client_config(config, data_path="/hospital", train_roots=("p",), val_roots=("v",))
    assert server_round == 3 and received.clients == ("b",) and received.supervision_of("b") == "bbox"
    assert (received.method, received.tau, received.data_path, received.train_roots) == ("fedmix", 0.7, "/hospital",
                                                                                          ("p",))
    assert round_lr(received, 3) == round_lr(settings, 3)  # the schedule stays on the server, its value travels


def test_a_client_refuses_config_keys_beyond_what_clients_receive():
    config = client_config(RunSettings(clients=("a",)), 1, "a")
    with pytest.raises(ValueError, match=r"unexpected keys \['data_path'\]"):
        read_client_config({**config, "data_path": "/server"})
