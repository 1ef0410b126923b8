"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from fednuclei.hooks import MethodTagHook, ReusedRunsHook
from fednuclei.logs import QuietLogsHook, quiet_libraries
from fednuclei.mlflow_tracking import ActiveProfileParamsHook, MlflowModelHook

quiet_libraries()
HOOKS = (QuietLogsHook(), MethodTagHook(), ReusedRunsHook(), MlflowModelHook(), ActiveProfileParamsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
