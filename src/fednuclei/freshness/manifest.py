"""The freshness manifest, ``data/freshness.json``: for every node, the fingerprint its outputs
were made with.

A node's record holds the parts of its fingerprint (``node``: its definition; ``code``;
``params``; ``inputs``: the signature of every input as the node read it), the signature of
every output as the node left it, and the MLflow run it logged to. A record is written right
after the node's last output is saved, and the records of every node a run is about to execute
are removed before it starts: a failed or killed run leaves no record for what it did not finish.
Each write replaces the file atomically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fednuclei.atomic import atomic_file

MANIFEST_PATH = Path("data") / "freshness.json"
FORMAT = 1

logger = logging.getLogger(__name__)


class Manifest:
    """The records of one project's manifest file (relative paths resolve against the project folder)."""

    def __init__(self, path: str | Path = MANIFEST_PATH):
        self.path = Path(path)
        self._records = self._read()

    def get(self, node: str) -> dict[str, Any] | None:
        """The record of the node named ``node``, or None."""
        return self._records.get(node)

    def forget(self, nodes: list[str]) -> None:
        """Remove the records of ``nodes`` (nodes about to run)."""
        if any(node in self._records for node in nodes):
            for node in nodes:
                self._records.pop(node, None)
            self._write()

    def record(self, node: str, record: dict[str, Any]) -> None:
        """Store the record of ``node``, whose outputs have all been saved."""
        self._records[node] = record
        self._write()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            content = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            logger.warning("Freshness manifest %s is unreadable (%s): every node counts as stale", self.path, error)
            return {}
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            logger.warning("Freshness manifest %s is not in format %d: every node counts as stale", self.path, FORMAT)
            return {}
        return content["nodes"]

    def _write(self) -> None:
        with atomic_file(self.path) as staging:
            staging.write_text(json.dumps({"format": FORMAT, "nodes": self._records}, indent=1, sort_keys=True))
