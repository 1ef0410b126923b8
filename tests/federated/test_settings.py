from dataclasses import fields, replace
from pathlib import Path

import pytest
import tomli

from fednuclei.federated.settings import FederatedSettings

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_run_config_round_trip():
    settings = FederatedSettings(clients=("a", "b"), train_roots=("x", "y/z"), lr=0.01, num_server_rounds=3)
    config = settings.to_run_config()
    assert config["clients"] == "a,b" and config["train-roots"] == "x,y/z" and config["num-server-rounds"] == 3
    assert all(isinstance(v, (str, int, float, bool)) for v in config.values())
    assert FederatedSettings.from_run_config(config) == settings


def test_from_run_config_fills_defaults_and_coerces_ints_to_floats():
    settings = FederatedSettings.from_run_config({"clients": " a , b ,", "lr": 1})
    assert settings.clients == ("a", "b")
    assert settings.lr == 1.0 and isinstance(settings.lr, float)
    assert settings.width == FederatedSettings().width


@pytest.mark.parametrize("config, message", [
    ({"num-rounds": 3}, "unknown run config keys"),
    ({"width": "8"}, "expected int"),
    ({"clients": 3}, "comma-separated"),
    ({"local-epochs": 0}, "local_epochs must be >= 1"),
    ({"clients": "a,a"}, "unique"),
])
def test_from_run_config_rejects_bad_values(config, message):
    with pytest.raises(ValueError, match=message):
        FederatedSettings.from_run_config(config)


def test_fingerprint_ignores_round_count_paths_and_resources():
    settings = FederatedSettings(clients=("a", "b"))
    same = replace(settings, num_server_rounds=99, data_path="/elsewhere", checkpoint_dir="/ckpt", gpu_fraction=0.5,
                   cpus_per_client=2, round_timeout=5.0)
    assert same.fingerprint() == settings.fingerprint()
    assert replace(settings, lr=0.5).fingerprint() != settings.fingerprint()
    assert replace(settings, data_version="new tiles").fingerprint() != settings.fingerprint()
    assert replace(settings, clients=("b", "a")).fingerprint() != settings.fingerprint()


def test_pyproject_app_config_covers_every_setting_with_its_default():
    """`flwr run --run-config` may only override keys the app config declares."""
    config = tomli.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert set(config) == {f.name.replace("_", "-") for f in fields(FederatedSettings)}
    assert replace(FederatedSettings.from_run_config(config), clients=()) == FederatedSettings()


def test_method_and_supervision_are_validated():
    with pytest.raises(ValueError, match="unknown method"):
        FederatedSettings(method="fedprox")
    with pytest.raises(ValueError, match="2 levels for 3 clients"):
        FederatedSettings(clients=("a", "b", "c"), supervision=("pixel", "bbox"))
    with pytest.raises(ValueError, match="unknown supervision levels"):
        FederatedSettings(clients=("a",), supervision=("scribble",))
    with pytest.raises(ValueError, match="needs at least one pixel client"):
        FederatedSettings(clients=("a",), supervision=("bbox",), method="fedst")
    assert FederatedSettings(clients=("a",), supervision=("bbox",), method="fedst", warmup_rounds=0)


@pytest.mark.parametrize("changes, message", [
    ({"tau": 1.5}, "tau"), ({"lam": -1.0}, "lam"), ({"pixel_share": 1.2}, "pixel_share"),
    ({"confidence_low": 0.95}, "confidence_low <= confidence_high"), ({"gamma_low": 0.0}, "gamma_low"),
    ({"participation": 0.0}, "participation"), ({"warmup_rounds": -1}, "warmup_rounds"),
])
def test_method_parameters_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        FederatedSettings(**changes)


def test_supervision_per_client_defaults_to_pixel_and_travels_in_the_run_config():
    assert FederatedSettings(clients=("a", "b")).client_supervision == {"a": "pixel", "b": "pixel"}
    settings = FederatedSettings(clients=("a", "b"), supervision=("pixel", "none"), method="fedmix")
    assert settings.supervision_of("b") == "none"
    with pytest.raises(ValueError, match="not one of the run's clients"):
        settings.supervision_of("z")
    config = settings.to_run_config()
    assert config["supervision"] == "pixel,none" and config["method"] == "fedmix"
    assert FederatedSettings.from_run_config(config) == settings


def test_pixel_share_defaults_per_method_and_fingerprints_by_its_value():
    fedst, fedrgd = FederatedSettings(method="fedst"), FederatedSettings(method="fedrgd")
    assert (fedst.trust_share, fedrgd.trust_share) == (0.9, 0.5)
    assert replace(fedrgd, pixel_share=0.8).trust_share == 0.8
    # The method's default and the same value written out are the same run.
    assert replace(fedrgd, pixel_share=0.5).fingerprint() == fedrgd.fingerprint()
    assert replace(fedrgd, pixel_share=0.9).fingerprint() != fedrgd.fingerprint()
    for changes in ({"method": "fedmix"}, {"tau": 0.8}, {"participation": 0.3}, {"gamma_high": 2.0}):
        assert replace(fedst, **changes).fingerprint() != fedst.fingerprint()
