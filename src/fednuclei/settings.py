"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from fednuclei.hooks import MethodTagHook

HOOKS = (MethodTagHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
