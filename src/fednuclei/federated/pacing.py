"""How long the server waits for a round's replies.

Flower's strategy loop waits up to one fixed timeout for every exchange. A run's
``round_timeout`` must cover its slowest first round (data loading, a cold start), far more than
later rounds take, so a client that hangs in round 5 would stall the run for that long.
:class:`PacedGrid` waits instead, per kind of message, :data:`WAIT_FACTOR` times the longest
such exchange so far (at least :data:`MIN_WAIT_S`, at most the timeout the loop gives): the
clients that have not replied by then count as failed (see
:class:`~fednuclei.federated.strategy.MethodStrategy`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid
from flwr.supercore.run import Run

logger = logging.getLogger(__name__)

WAIT_FACTOR = 3.0
MIN_WAIT_S = 60.0


class PacedGrid(Grid):
    """A Grid that delegates to ``grid`` and waits for replies as the module docstring says."""

    def __init__(self, grid: Grid, min_wait: float = MIN_WAIT_S):
        self._grid = grid
        self._min_wait = min_wait
        self.longest: dict[str, float] = {}

    def wait_limit(self, message_type: str, timeout: float | None) -> float | None:
        """Seconds to wait for replies to messages of ``message_type``."""
        cap = float("inf") if timeout is None else timeout
        if message_type not in self.longest:
            return timeout
        return min(cap, max(self._min_wait, WAIT_FACTOR * self.longest[message_type]))

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        if not messages:
            return []
        message_type = messages[0].metadata.message_type
        limit = self.wait_limit(message_type, timeout)
        started = time.monotonic()
        replies = list(self._grid.send_and_receive(messages, timeout=limit))
        elapsed = time.monotonic() - started
        if len(replies) < len(messages):
            logger.warning("%d of %d %s replies missing after waiting %.0f s", len(messages) - len(replies),
                           len(messages), message_type, elapsed)
        else:
            self.longest[message_type] = max(elapsed, self.longest.get(message_type, 0.0))
        return replies

    # Everything else is the wrapped grid's.
    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(self, *args, **kwargs) -> Message:
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)
