"""The project's Kedro commands: ``kedro run`` skips the nodes that are fresh
(:mod:`fednuclei.freshness`); every other command is Kedro's own."""

import click
from kedro.framework.cli.utils import LazyGroup


@click.group(name="fednuclei", cls=LazyGroup, lazy_subcommands={"run": "fednuclei.freshness.command.run"})
def cli() -> None:
    """Project commands (loaded only when used, like Kedro's)."""
