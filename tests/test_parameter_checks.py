"""Parameters checked before a run's first node, each problem named by its key."""

import copy
import functools

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset

from fednuclei.data.partition import ClientConfigError
from fednuclei.hooks import ParameterCheckHook
from fednuclei.parameter_checks import ParameterError, check_parameters
from fednuclei.pipeline_registry import register_pipelines
from fednuclei.pipelines.data_processing.nodes import check_clients_fit

from .conftest import REPO


@functools.cache
def _pipelines():
    return register_pipelines()


def used(pipeline: str) -> set[str]:
    """The parameters the nodes of a registered pipeline read."""
    return {name.removeprefix("params:") for name in _pipelines()[pipeline].inputs() if name.startswith("params:")}


def parameters(env: str = "base") -> dict:
    """The project's parameters in ``env``, as Kedro merges them."""
    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base", env=env)
    return copy.deepcopy(loader["parameters"])


@pytest.mark.parametrize("env", ["base", "real"])
def test_the_project_parameters_pass_for_every_pipeline(env):
    for pipeline in _pipelines():
        check_parameters(parameters(env), used(pipeline))


def _set(values: dict, key: str, value) -> dict:
    *path, last = key.split(".")
    for part in path:
        values = values[part]
    if value is None:
        del values[last]
    else:
        values[last] = value


BAD = [
    # (pipeline, key set (None: removed), value, message)
    ("data_processing", "splits.test", 1.1, r"parameter splits.test must be a fraction in \[0, 1\], got 1.1"),
    ("data_processing", "splits.train", 0, "parameter splits.train must be > 0"),
    ("data_processing", "splits.val", None, "parameter splits.val is missing"),
    ("data_processing", "splits.tain", 0.5, "parameter splits.tain is not a setting of splits"),
    ("data_processing", "splits.seed", "zero", "parameter splits.seed must be an integer, got 'zero'"),
    ("data_processing", "patches.size", 0, "parameter patches.size must be >= 1, got 0"),
    ("data_processing", "patches.size", "128", "parameter patches.size must be an integer, got '128'"),
    ("data_processing", "patches.stride", 256, r"parameter patches.stride must be in 1..patches.size \(128\), got 256"),
    ("data_processing", "full.labels", "all", "parameter full.labels must be one of"),
    ("augmentation", "augmentation.copies", -1, "parameter augmentation.copies must be >= 0, got -1"),
    ("augmentation", "augmentation.recipe", {"blur_p": 2}, "parameter augmentation.recipe: blur_p must be a probability"),
    ("fedavg", "fedavg.training.lr", -0.001, "parameter fedavg.training: lr must be finite and > 0, got -0.001"),
    ("fedavg", "profiles.cpu.lr", -0.001, "parameter profiles.cpu: lr must be finite and > 0, got -0.001"),
    ("fedavg", "profile", "tpu", r"parameter profile: 'tpu' is not one of the compute profiles \['cpu', 'gpu'\]"),
    ("fedmix", "fedmix.training.tau", 1.5, r"parameter fedmix.training: tau must be in \[0, 1\], got 1.5"),
    ("local", "local.training.epochs", 3, r"parameter local.training: unknown settings \['epochs'\]"),
    ("centralized", "centralized.training.width", 8.5, "parameter centralized.training: width: expected int, got 8.5"),
]


@pytest.mark.parametrize(("pipeline", "key", "value", "message"), BAD)
def test_a_bad_parameter_is_named(pipeline, key, value, message):
    values = parameters()
    _set(values, key, value)
    with pytest.raises(ParameterError, match=message):
        check_parameters(values, used(pipeline))


def test_split_fractions_that_do_not_add_up_to_one_are_refused_not_rescaled():
    values = parameters()
    values["splits"].update(val=0.9, test=0.4)
    with pytest.raises(ParameterError, match=r"parameters splits.train \+ splits.val \+ splits.test must add up to 1, "
                                             r"got 0.6 \+ 0.9 \+ 0.4 = 1.9"):
        check_parameters(values, used("data_processing"))


def test_client_configurations_are_named():
    values = parameters()
    values["clients"][2]["supervision"] = "boxes"
    with pytest.raises(ParameterError, match=r"parameter clients\[2\] \(hospital_2\): unknown supervision level 'boxes'"):
        check_parameters(values, used("data_processing"))
    values["clients"] = []
    with pytest.raises(ParameterError, match="parameter clients is empty"):
        check_parameters(values, used("data_processing"))


def test_the_clients_that_start_a_federation_are_checked_with_the_method():
    values = parameters()
    for client in values["clients"]:
        client["supervision"] = "bbox" if client["supervision"] == "pixel" else client["supervision"]
    values["fedst"]["training"]["warmup_rounds"] = 2
    with pytest.raises(ParameterError, match="parameter fedst.training: FedST warm-up needs at least one pixel client"):
        check_parameters(values, used("fedst"))
    check_parameters(values, used("fedavg"))  # the full label view: every client trains on masks


def test_only_the_parameters_the_run_reads_are_checked():
    values = parameters()
    values["fedmix"]["training"]["lr"] = -1.0
    check_parameters(values, used("data_processing"))
    with pytest.raises(ParameterError, match="fedmix.training: lr"):
        check_parameters(values, used("compare"))


def test_the_hook_checks_before_the_first_node():
    values = parameters()
    values["splits"]["val"] = 1.1
    hooks = _create_hook_manager()
    hooks.register(ParameterCheckHook())
    with pytest.raises(ParameterError, match="splits.val must be a fraction"):
        hooks.hook.before_pipeline_run(run_params={}, pipeline=_pipelines()["data_processing"],
                                       catalog=DataCatalog({"parameters": MemoryDataset(values)}))


def test_clients_that_do_not_fit_the_tiles_are_named_before_anything_is_written(synthetic_tiles):
    clients = parameters()["clients"][:3]
    check_clients_fit(synthetic_tiles, clients, patch_size=64)
    with pytest.raises(ValueError, match=r"patches.size \(128\) is larger than 15 tile\(s\): synthetic_h0_000 of "
                                         r"client 'hospital_0' \(64x64\)"):
        check_clients_fit(synthetic_tiles, clients, patch_size=128)
    clients[1] = {**clients[1], "groups": ["hospital_9"]}
    with pytest.raises(ClientConfigError, match=r"client 'hospital_1': groups \['hospital_9'\] match no synthetic tile"):
        check_clients_fit(synthetic_tiles, clients, patch_size=64)
