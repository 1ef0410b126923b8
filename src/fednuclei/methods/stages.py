"""A federated method's run in stages: the first stage, an incremental stage for what is new, and
the retraining from scratch an incremental stage is measured against.

Rounds are numbered for the whole federation. With a plan of N rounds
(``num_server_rounds``), E incremental rounds (``incremental_rounds``) and clients joining at
rounds k > 1 (``join_round``), the first stage trains the starting clients on the first stage's
tiles for rounds 1 .. min(first k, N + 1) - 1; the incremental stage starts from its best model
and trains everyone on every tile, each joiner from its own round on, up to round N + E. A run
where nothing is new (no joiner, no tile that arrived since the first run) has an empty
incremental stage (no round). Retraining from scratch trains everyone on every tile from round 1
to N + E.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fednuclei.methods import settings_for
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Client:
    """A client of the plan: its supervision level and the round it joins at (0 or 1: the start)."""

    supervision: str
    join_round: int = 0


@dataclass(frozen=True)
class Stages:
    """The settings of each stage (see the module docstring)."""

    first: RunSettings
    incremental: RunSettings
    scratch: RunSettings

    @property
    def anything_new(self) -> bool:
        """Whether the incremental stage has rounds to train."""
        return self.incremental.num_server_rounds >= self.incremental.first_round


def plan_stages(values: Mapping[str, Any], clients: Mapping[str, Client], new_tiles: bool,
                first_data: Mapping[str, Any], all_data: Mapping[str, Any]) -> Stages:
    """The stages of a run.

    Args:
        values: run settings values (method, budget, ...) but clients and data.
        clients: every client of the plan, by name, in run order.
        new_tiles: tiles arrived since the first run at starting clients.
        first_data, all_data: ``train_roots``, ``val_roots`` and ``data_version`` of the first
            stage's tiles and of every tile.

    Raises:
        ValueError: no starting client, or bad settings (named).
    """
    planned = settings_for(values)
    joins = {name: client.join_round for name, client in clients.items()}
    later = sorted({k for k in joins.values() if k > 1})
    start = min([*later, planned.num_server_rounds + 1])
    starting = [name for name, k in joins.items() if k <= 1]
    if not starting:
        raise ValueError(f"no client starts the federation: every client joins later ({joins})")
    last = planned.num_server_rounds + planned.incremental_rounds
    for name, k in joins.items():
        if k > last:
            logger.warning("client %s joins at round %d, after the last round %d: it never trains", name, k, last)
    # FedProx pulls towards the pre-join model, which only the incremental stage has: the other
    # stages leave proximal_mu out, so that changing it retrains the incremental stage alone.
    unpulled = {"proximal_mu": 0.0}
    first = settings_for({**values, **first_data, "clients": starting,
                          "supervision": [clients[name].supervision for name in starting],
                          "num_server_rounds": start - 1, **unpulled})
    everyone = {**values, **all_data, "clients": list(clients),
                "supervision": [client.supervision for client in clients.values()]}
    anything_new = bool(later) or new_tiles
    if not anything_new or start > last:
        if anything_new:
            logger.warning("there is new data but incremental_rounds is 0: it is not trained")
        return Stages(first, settings_for({**everyone, "first_round": start, "num_server_rounds": start - 1}), first)
    incremental = settings_for({**everyone, "join_rounds": [joins[name] for name in clients], "first_round": start,
                                "num_server_rounds": last})
    scratch = settings_for({**everyone, "num_server_rounds": last, **unpulled})
    return Stages(first, incremental, scratch)


def continuing_from(settings: RunSettings, start: Path) -> RunSettings:
    """``settings`` starting from the model file ``start`` (and FedMix's second model beside it),
    identified by their content."""
    digest = hashlib.sha256()
    for path in sorted(start.parent.glob(f"{start.stem}*.pt")):
        digest.update(path.read_bytes())
    values = {**settings.to_dict(), "initial_model": str(start), "initial_model_version": digest.hexdigest()[:16]}
    return RunSettings.from_mapping(values, where="incremental stage")
