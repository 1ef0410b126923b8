"""What a ``kedro run`` prints: the project's logging configuration (``conf/logging.yml``) for
every library, and more detail on request."""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import yaml
from kedro.framework.hooks import hook_impl
from kedro.framework.project import LOGGING

from fednuclei.federated.progress import duration

logger = logging.getLogger(__name__)

# DEBUG (or any level name) for the project's, Kedro's and Flower's loggers, the ones
# conf/logging.yml quiets included.
LEVEL_VARIABLE = "FEDNUCLEI_LOG_LEVEL"
DETAILED_LOGGERS = ("fednuclei", "kedro", "flwr")


# Modules whose warnings are about the libraries' own use of theirs (Click, pydantic, SQLAlchemy,
# OmegaConf, MLflow's model typing): nothing a user of this project can act on.
LIBRARY_WARNINGS = r"(kedro_viz|kedro_mlflow|mlflow|kedro\.config)(\.|$)"


def quiet_libraries() -> None:
    """Ignore the warnings of :data:`LIBRARY_WARNINGS`' modules (the project's own still show),
    and MLflow's progress bars (unless the user sets the variable)."""
    warnings.filterwarnings("ignore", module=LIBRARY_WARNINGS)
    # Kedro's advice against dots in dataset names: here they are its own namespaces (``fedavg.global_model``)
    warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported once here, unheard: at import they warn about their own dependencies (pydantic,
    # MLflow's model typing) under filters of their own ("once"), which come before the ones above.
    with warnings.catch_warnings():
        warnings.showwarning = lambda *args, **kwargs: None
        import kedro_mlflow.framework.hooks  # noqa: F401
        import kedro_mlflow.mlflow  # noqa: F401
        import kedro_viz.launchers.cli.lazy_default_group  # noqa: F401 - loaded by Kedro's CLI as a plugin


class QuietLogsHook:
    """Applies the project's logging configuration again once Flower is imported, when the
    project's context is made: Flower adds its own console handler and sets its logger to DEBUG
    when first imported, which would print its records twice and all of them; and a ``kedro run``
    started from a subfolder did not find the configuration. Then applies :data:`LEVEL_VARIABLE`.
    Says when the run ends."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._started = time.perf_counter()
        import flwr.common.logger  # noqa: F401 - imported now, so that its setup is undone below

        LOGGING.configure(_configuration(Path(context.project_path)))
        level = os.environ.get(LEVEL_VARIABLE, "").upper()
        if level:
            for name in {*DETAILED_LOGGERS, *LOGGING.data.get("loggers", {})}:
                if name.split(".")[0] in DETAILED_LOGGERS:
                    logging.getLogger(name).setLevel(level)

    @hook_impl
    def after_pipeline_run(self, run_params: dict) -> None:
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        logger.info("%s finished in %s", " + ".join(names), duration(time.perf_counter() - self._started))


def _configuration(project: Path) -> dict:
    """The logging configuration Kedro chose, or the project's own where Kedro, started from a
    folder below the project's (``notebooks/``), looked for ``conf/logging.yml`` there and fell
    back to its default."""
    own = project / "conf" / "logging.yml"
    if os.environ.get("KEDRO_LOGGING_CONFIG") or not own.is_file():
        return LOGGING.data
    return yaml.safe_load(own.read_text())
