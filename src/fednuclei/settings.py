"""Kedro project settings."""

from fednuclei.logs import QuietLogsHook, quiet_libraries

quiet_libraries()  # before the imports below load the libraries whose import-time warnings it quiets

from kedro.config import OmegaConfigLoader  # noqa: E402

from fednuclei.hooks import MethodTagHook, ParameterCheckHook, ProjectLockHook, ReusedRunsHook  # noqa: E402
from fednuclei.mlflow_store import TrackingStoreHook  # noqa: E402
from fednuclei.mlflow_tracking import ActiveProfileParamsHook, MlflowModelHook  # noqa: E402

HOOKS = (QuietLogsHook(), ProjectLockHook(), ParameterCheckHook(), TrackingStoreHook(), MethodTagHook(),
         ReusedRunsHook(), MlflowModelHook(), ActiveProfileParamsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
