"""The run settings: one home for every default and range check, and the YAML that only overrides."""

from dataclasses import fields, replace
from pathlib import Path

import pytest
import yaml

from fednuclei.methods import METHODS, method_of, settings_for
from fednuclei.run_settings import RunSettings

REPO = Path(__file__).resolve().parents[1]


def test_from_mapping_round_trips_plain_values_and_coerces_ints_to_floats():
    settings = RunSettings(clients=("a", "b"), train_roots=("x", "y/z"), lr=0.01, num_server_rounds=3)
    assert RunSettings.from_mapping(settings.to_dict()) == settings
    coerced = RunSettings.from_mapping({"clients": ["a", "b"], "lr": 1})
    assert coerced.clients == ("a", "b") and coerced.lr == 1.0 and isinstance(coerced.lr, float)
    assert coerced.width == RunSettings().width


@pytest.mark.parametrize("values, message", [
    ({"num_rounds": 3}, "unknown settings"),
    ({"width": "8"}, "expected int"),
    ({"clients": "a,b"}, "list of strings"),
    ({"local_epochs": 0}, "local_epochs must be >= 1"),
    ({"clients": ["a", "a"]}, "unique"),
])
def test_from_mapping_rejects_bad_values_naming_the_source(values, message):
    with pytest.raises(ValueError, match=f"fedmix.training: .*{message}"):
        RunSettings.from_mapping(values, where="fedmix.training")


def test_fingerprint_ignores_round_count_paths_and_resources():
    settings = RunSettings(clients=("a", "b"))
    same = replace(settings, num_server_rounds=99, data_path="/elsewhere", checkpoint_dir="/ckpt", gpu_fraction=0.5,
                   cpus_per_client=2, round_timeout=5.0)
    assert same.fingerprint() == settings.fingerprint()
    assert replace(settings, lr=0.5).fingerprint() != settings.fingerprint()
    assert replace(settings, data_version="new tiles").fingerprint() != settings.fingerprint()
    assert replace(settings, clients=("b", "a")).fingerprint() != settings.fingerprint()


def test_method_and_supervision_are_validated():
    with pytest.raises(ValueError, match="unknown method"):
        method_of("fedprox")
    with pytest.raises(ValueError, match="unknown method"):
        settings_for({"method": "fedprox"})
    with pytest.raises(ValueError, match="2 levels for 3 clients"):
        RunSettings(clients=("a", "b", "c"), supervision=("pixel", "bbox"))
    with pytest.raises(ValueError, match="unknown supervision levels"):
        RunSettings(clients=("a",), supervision=("scribble",))
    with pytest.raises(ValueError, match="needs at least one pixel client"):
        settings_for({"clients": ["a"], "supervision": ["bbox"], "method": "fedst"})
    assert settings_for({"clients": ["a"], "supervision": ["bbox"], "method": "fedst", "warmup_rounds": 0})


@pytest.mark.parametrize("changes, message", [
    ({"tau": 1.5}, "tau"), ({"lam": -1.0}, "lam"), ({"pixel_share": 1.2}, "pixel_share"),
    ({"confidence_low": 0.95}, "confidence_low <= confidence_high"), ({"gamma_low": 0.0}, "gamma_low"),
    ({"participation": 0.0}, "participation"), ({"warmup_rounds": -1}, "warmup_rounds"),
    ({"gpu_fraction": 1.5}, "gpu_fraction"),
])
def test_method_parameters_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        RunSettings(**changes)


def test_supervision_per_client_defaults_to_pixel():
    assert RunSettings(clients=("a", "b")).client_supervision == {"a": "pixel", "b": "pixel"}
    settings = RunSettings(clients=("a", "b"), supervision=("pixel", "none"), method="fedmix")
    assert settings.supervision_of("b") == "none"
    with pytest.raises(ValueError, match="not one of the run's clients"):
        settings.supervision_of("z")


def test_pixel_share_defaults_per_method_and_fingerprints_by_its_value():
    fedst, fedrgd = settings_for({"method": "fedst"}), settings_for({"method": "fedrgd"})
    assert (fedst.pixel_share, fedrgd.pixel_share) == (0.9, 0.5)
    assert settings_for({"method": "fedrgd", "pixel_share": 0.8}).pixel_share == 0.8
    assert replace(fedrgd, pixel_share=0.9).fingerprint() != fedrgd.fingerprint()
    for changes in ({"method": "fedmix"}, {"tau": 0.8}, {"participation": 0.3}, {"gamma_high": 2.0}):
        assert replace(fedst, **changes).fingerprint() != fedst.fingerprint()


def _yaml_overrides():
    """Every (file, where, values) of the training parameters that become run settings."""
    for path in sorted(REPO.glob("conf/*/parameters_training.yml")):
        parameters = yaml.safe_load(path.read_text())
        for profile, values in parameters.get("profiles", {}).items():
            yield path, f"profiles.{profile}", values, None
        for name in METHODS:
            if name in parameters:
                yield path, f"{name}.training", parameters[name]["training"], name


def test_yaml_only_overrides_each_setting_default_once():
    """A profile or a method's parameters never restate the settings' default (or the method's own)."""
    defaults = {f.name: f.default for f in fields(RunSettings)}
    assert list(_yaml_overrides()), "no training parameters found"
    for path, where, values, method in _yaml_overrides():
        RunSettings.from_mapping(values, where=f"{path.name} {where}")  # known keys, right types
        own = {**defaults, **(method_of(method).defaults if method else {})}
        restated = {key: value for key, value in values.items()
                    if own[key] == (tuple(value) if isinstance(value, list) else value)}
        assert not restated, f"{path.relative_to(REPO)} {where} restates defaults {restated}"
    for method in METHODS.values():
        restated = {key: value for key, value in method.defaults.items() if defaults[key] == value}
        assert not restated, f"method {method.name} restates the settings' defaults {restated}"
