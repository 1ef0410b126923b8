"""Durable federated runs: every finished round is on disk, and a run resumes after the last one.

A run's folder is ``<checkpoint_dir>/run-<first 12 hex digits of the settings fingerprint>/``::

    settings.json          the run config and its full fingerprint
    history.json           one dict per finished round (the commit record)
    rounds/round-NNNN.pt   global model after round NNNN (only the latest and the best are kept)
    final.pt               copy of the latest round's model
    best.pt                copy of the model of the round with the highest validation Dice

Settings that change what a round computes change the fingerprint and so the folder: such a run
starts over in a fresh folder and leaves the old one intact, while the same settings (up to the
round count, paths and resources) find their folder and continue it.

Every file is replaced atomically (temp file + ``os.replace``). A round counts as finished once
``history.json`` lists it; a crash before that leaves at most a stray round file that the next
:meth:`RunStore.tidy` removes, and a crash after it leaves ``final.pt``/``best.pt`` to be
refreshed by that same call.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from fednuclei.atomic import atomic_file
from fednuclei.federated.settings import FederatedSettings
from fednuclei.model.training import arrays_to_state, load_model, save_model
from fednuclei.model.unet import UNet

METHOD = "fedavg"


class RunStore:
    """The checkpoint folder of one run.

    Args:
        settings: the run; its fingerprint names the folder.

    Raises:
        ValueError: the folder exists but records other settings (a fingerprint prefix clash).
    """

    def __init__(self, settings: FederatedSettings):
        self.settings = settings
        fingerprint = settings.fingerprint()
        self.folder = Path(settings.checkpoint_dir).expanduser().resolve() / f"run-{fingerprint[:12]}"
        (self.folder / "rounds").mkdir(parents=True, exist_ok=True)
        recorded = self.folder / "settings.json"
        if recorded.is_file():
            stored = json.loads(recorded.read_text())["fingerprint"]
            if stored != fingerprint:
                raise ValueError(f"{self.folder} belongs to a run with fingerprint {stored}, not {fingerprint}; "
                                 "use another checkpoint_dir")
        # Rewritten each time: the round count and paths may have changed since.
        write_json(recorded, {"fingerprint": fingerprint, "run_config": settings.to_run_config()})

    @property
    def history_path(self) -> Path:
        return self.folder / "history.json"

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    @property
    def final_path(self) -> Path:
        return self.folder / "final.pt"

    def history(self) -> list[dict[str, Any]]:
        """The finished rounds, in order (empty for a new run)."""
        if not self.history_path.is_file():
            return []
        return json.loads(self.history_path.read_text())

    def round_path(self, server_round: int) -> Path:
        return self.folder / "rounds" / f"round-{server_round:04d}.pt"

    def load_latest(self, model: UNet) -> int:
        """Put the global weights of the last finished round into ``model``; returns that round (0: none)."""
        finished = len(self.history())
        if finished:
            stored, _ = load_model(self.round_path(finished))
            arrays_to_state(model, {name: t.numpy() for name, t in stored.state_dict().items()})
        return finished

    def commit_round(self, model: UNet, record: dict[str, Any]) -> None:
        """Make round ``record["round"]`` durable: its global model, then its history entry."""
        history = self.history()
        server_round = record["round"]
        if server_round != len(history) + 1:
            raise ValueError(f"round {server_round} does not follow the {len(history)} finished rounds")
        save_model(model, self.round_path(server_round),
                   {"method": METHOD, "round": server_round, "fingerprint": self.settings.fingerprint(),
                    "val_dice": record.get("val_dice")})
        write_json(self.history_path, [*history, _finite(record)])
        self.tidy()

    def tidy(self) -> None:
        """Refresh ``final.pt`` and ``best.pt`` from the history and drop unneeded round files."""
        history = self.history()
        if not history:
            return
        latest, best = len(history), best_round(history)
        _copy(self.round_path(latest), self.final_path)
        _copy(self.round_path(best), self.best_path)
        keep = {self.round_path(latest).name, self.round_path(best).name}
        for path in (self.folder / "rounds").glob("round-*.pt"):
            if path.name not in keep:
                path.unlink()


def best_round(history: list[dict[str, Any]]) -> int:
    """The round with the highest validation Dice (the earliest of ties); the latest round when no
    round has one (no client holds validation masks)."""
    scored = [(entry["val_dice"], -entry["round"]) for entry in history if entry.get("val_dice") is not None]
    return -max(scored)[1] if scored else history[-1]["round"]


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    with atomic_file(path) as staging:
        staging.write_text(json.dumps(payload, indent=1))


def _copy(source: Path, target: Path) -> None:
    with atomic_file(target) as staging:
        shutil.copyfile(source, staging)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, so history.json stays strict JSON."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
