"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from fednuclei.hooks import MethodTagHook, ParameterCheckHook, ProjectLockHook, ReusedRunsHook
from fednuclei.logs import QuietLogsHook, quiet_libraries
from fednuclei.mlflow_store import TrackingStoreHook
from fednuclei.mlflow_tracking import ActiveProfileParamsHook, MlflowModelHook

quiet_libraries()
HOOKS = (QuietLogsHook(), ProjectLockHook(), ParameterCheckHook(), TrackingStoreHook(), MethodTagHook(),
         ReusedRunsHook(), MlflowModelHook(), ActiveProfileParamsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
