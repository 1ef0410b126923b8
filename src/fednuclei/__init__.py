"""fednuclei: federated nuclei segmentation on H&E tiles."""

import os

__version__ = "0.1.0"

# A hospital's machine calls no one: the telemetry of the libraries used here is off unless the
# user turns it on (each reads its variable when first imported or when it would report).
TELEMETRY_OFF = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "KEDRO_DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # its check for a newer version
}
# A simulation runs Ray in its single-machine mode, which binds and connects on loopback only
# (read when Ray is first imported): nothing of it is reachable from, or reaches, the network.
RAY_LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
for _name, _value in {**TELEMETRY_OFF, **RAY_LOOPBACK_ONLY}.items():
    os.environ.setdefault(_name, _value)
