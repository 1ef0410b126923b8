"""``kedro run`` for this project: Kedro's own command, with the freshness-aware runner as its
default runner, ``--all`` to run every node regardless and ``--verbose`` for details."""

from __future__ import annotations

import os
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from fednuclei.logs import LEVEL_VARIABLE

RUNNER = "fednuclei.freshness.runner.FreshnessRunner"

ALL_HELP = """Run every node of the pipeline, fresh or not (by default a node whose outputs exist
and whose code, parameters and inputs are unchanged since it made them is skipped)."""


def _run(*, rerun_all: bool, verbose: bool, runner: str | None, runner_params: dict[str, Any],
         **options: Any) -> dict[str, Any]:
    if verbose:
        os.environ[LEVEL_VARIABLE] = "DEBUG"
    runner = runner or RUNNER
    if runner == RUNNER:
        runner_params = {**runner_params, "rerun_all": rerun_all}
    elif rerun_all:
        raise click.UsageError(f"--all belongs to the default runner; --runner {runner} runs every node anyway")
    return kedro_run.callback(runner=runner, runner_params=runner_params, **options)


run = click.Command(
    name="run",
    callback=_run,
    params=[*kedro_run.params, click.Option(["--all", "rerun_all"], is_flag=True, help=ALL_HELP),
            click.Option(["--verbose"], is_flag=True, help=f"Log details too (or set {LEVEL_VARIABLE}=DEBUG).")],
    help=f"{kedro_run.help}\n\nNodes that are fresh are skipped: see docs/freshness.md.",
    short_help="Run the pipeline, skipping the nodes that are fresh.",
    context_settings=kedro_run.context_settings,
)
