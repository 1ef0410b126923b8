"""How far a federated run is: one log line per finished round, and a progress bar on a terminal.

The line names the round, each client that trained with its loss and time, the validation Dice,
the time spent and the time left (this run's mean round time times the rounds to go). The bar
(tqdm, over the rounds) appears only when the output is a terminal; log lines print above it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

logger = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``seconds`` as people say it: ``42 s``, ``3 min 5 s``, ``1 h 20 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def round_line(record: dict[str, Any], last_round: int, elapsed: float, rounds_left: int, rounds_done: int) -> str:
    """The log line of a finished round's history record (see the module docstring)."""
    clients = ", ".join(
        f"{name} {entry['train_loss']:.3f} ({entry.get('train_seconds', 0):.0f} s)"
        for name, entry in record["clients"].items() if entry.get("train_loss") is not None)
    failed = sorted({name for stage in (record.get("failures") or {}).values() for name in stage})
    dice = record.get("val_dice")
    parts = [f"loss {clients or 'none trained'}", f"val Dice {dice:.3f}" if dice is not None else "no validation Dice"]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    left = f", about {duration(elapsed / rounds_done * rounds_left)} left" if rounds_left else ""
    parts.append(f"{duration(elapsed)} elapsed{left}")
    return f"round {record['round']}/{last_round}: " + "; ".join(parts)


class RoundProgress:
    """Reports the rounds of one run, from ``first`` to ``last`` (see the module docstring)."""

    def __init__(self, method: str, first: int, last: int):
        self.last, self.to_go = last, last - first + 1
        self.started = time.perf_counter()
        self.done = 0
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        self._bar = tqdm(total=self.to_go, desc=method, unit="round", disable=None)  # None: terminals only

    def round_done(self, record: dict[str, Any]) -> None:
        self.done += 1
        logger.info(round_line(record, self.last, time.perf_counter() - self.started, self.to_go - self.done, self.done))
        self._bar.update()

    def close(self) -> None:
        self._bar.close()
        self._redirect.__exit__(None, None, None)
