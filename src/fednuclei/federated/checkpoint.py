"""Durable federated runs: every finished round is on disk, and a run resumes after the last one.

A run's folder is ``<checkpoint_dir>/run-<first 12 hex digits of the settings fingerprint>/``::

    settings.json          the run config and its full fingerprint
    history.json           one dict per finished round (the commit record)
    rounds/round-NNNN.pt   global model after round NNNN (only the latest and the best are kept)
    final.pt               copy of the latest round's model
    best.pt                copy of the model of the round with the highest validation Dice

FedMix trains two global models. Its model 1 is *the* global model: the one validated each
round, in ``round-NNNN.pt``, ``final.pt`` and ``best.pt``. Model 2 lies next to it as
``round-NNNN.model_2.pt``, ``final.model_2.pt`` and ``best.model_2.pt`` (of the same rounds), so
a resumed run restores both.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fednuclei.atomic import atomic_file
from fednuclei.methods import method_of
from fednuclei.model.files import arrays_to_state, load_model, save_model
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings


class RunStore:
    """The checkpoint folder of one run.

    Args:
        settings: the run; its fingerprint names the folder.

    Raises:
        ValueError: the folder exists but records other settings (a fingerprint prefix clash).
    """

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.extra_models = method_of(settings.method).extra_models
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
        write_json(recorded, {"fingerprint": fingerprint, "settings": settings.to_dict()})

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

    def round_path(self, server_round: int, extra: str | None = None) -> Path:
        """The main model of a round, or its extra model ``extra`` (e.g. ``model_2``)."""
        suffix = "" if extra is None else f".{extra}"
        return self.folder / "rounds" / f"round-{server_round:04d}{suffix}.pt"

    def extra_path(self, kind: str, extra: str) -> Path:
        """``final.<extra>.pt`` or ``best.<extra>.pt`` (``kind`` is ``final`` or ``best``)."""
        return self.folder / f"{kind}.{extra}.pt"

    @property
    def last_round(self) -> int:
        """The last finished global round (``first_round - 1`` before any)."""
        return self.settings.first_round - 1 + len(self.history())

    def load_start(self, model: UNet, extras: Mapping[str, UNet] | None = None) -> None:
        """Put the weights the run starts from into ``model`` (and ``extras``): those of the
        settings' ``initial_model`` when it names one; else the models keep their initialisation."""
        self._check_extras(extras)
        if self.settings.initial_model:
            start = Path(self.settings.initial_model).expanduser()
            self._load({None: start} | {name: start.with_name(f"{start.stem}.{name}.pt") for name in self.extra_models},
                       model, extras)

    def load_latest(self, model: UNet, extras: Mapping[str, UNet] | None = None) -> int:
        """Put the global weights of the last finished round into ``model`` (and the method's
        extra models into ``extras``, by name), or, before any round, those the run starts from
        (:meth:`load_start`); returns :attr:`last_round`."""
        if not self.history():
            self.load_start(model, extras)
            return self.last_round
        self._check_extras(extras)
        self._load({name: self.round_path(self.last_round, name) for name in (None, *self.extra_models)}, model, extras)
        return self.last_round

    @staticmethod
    def _load(paths: dict[str | None, Path], model: UNet, extras: Mapping[str, UNet] | None) -> None:
        _load_into(model, paths[None])
        for name, extra in (extras or {}).items():
            _load_into(extra, paths[name])

    def commit_round(self, model: UNet, record: dict[str, Any], extras: Mapping[str, UNet] | None = None) -> None:
        """Make round ``record["round"]`` durable: its global model(s), then its history entry.

        Args:
            model: the main global model (FedMix: model 1).
            record: the history entry; ``round`` must follow the finished rounds.
            extras: the method's extra global models by name (FedMix: ``{"model_2": ...}``).
        """
        self._check_extras(extras)
        history = self.history()
        server_round = record["round"]
        if server_round != self.last_round + 1:
            raise ValueError(f"round {server_round} does not follow the finished rounds {self.settings.first_round}.."
                             f"{self.last_round}")
        config = {"method": self.settings.method, "round": server_round, "fingerprint": self.settings.fingerprint(),
                  "val_dice": record.get("val_dice")}
        for name, extra in (extras or {}).items():
            save_model(extra, self.round_path(server_round, name), {**config, "model": name})
        save_model(model, self.round_path(server_round), {**config, "model": "model_1"} if extras else config)
        write_json(self.history_path, [*history, _finite(record)])
        self.tidy()

    def _check_extras(self, extras: Mapping[str, UNet] | None) -> None:
        given = tuple(sorted(extras or {}))
        if given != tuple(sorted(self.extra_models)):
            raise ValueError(f"method {self.settings.method} keeps extra models {list(self.extra_models)}, "
                             f"got {list(given)}")

    def tidy(self) -> None:
        """Refresh ``final.pt`` and ``best.pt`` (and the extra models' copies) from the history and
        drop unneeded round files."""
        history = self.history()
        if not history:
            return
        latest, best = self.last_round, best_round(history)
        _copy(self.round_path(latest), self.final_path)
        _copy(self.round_path(best), self.best_path)
        keep = {self.round_path(latest).name, self.round_path(best).name}
        for name in self.extra_models:
            _copy(self.round_path(latest, name), self.extra_path("final", name))
            _copy(self.round_path(best, name), self.extra_path("best", name))
            keep |= {self.round_path(latest, name).name, self.round_path(best, name).name}
        for path in (self.folder / "rounds").glob("round-*.pt"):
            if path.name not in keep:
                path.unlink()


def best_round(history: list[dict[str, Any]]) -> int:
    """The round with the highest validation Dice (the earliest of ties), among the rounds
    validated by the same clients as the latest round validated by the most: a round some client
    failed to validate is not compared with the others. The latest round when no round has a
    validation Dice (no client holds validation masks)."""
    scored = [entry for entry in history if entry.get("val_dice") is not None]
    if not scored:
        return history[-1]["round"]
    validators = [frozenset(entry.get("val_clients") or ()) for entry in scored]
    widest = max(reversed(validators), key=len)
    return -max((entry["val_dice"], -entry["round"]) for entry, who in zip(scored, validators) if who == widest)[1]


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically."""
    with atomic_file(path) as staging:
        staging.write_text(json.dumps(payload, indent=1))


def _load_into(model: UNet, path: Path) -> None:
    stored, _ = load_model(path)
    arrays_to_state(model, {name: t.numpy() for name, t in stored.state_dict().items()})


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
