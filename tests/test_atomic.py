"""Atomic writes: what a killed write leaves, and the next run's clean-up of it."""

import logging
import os
import stat

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from fednuclei.atomic import atomic_file, atomic_folder, remove_staging_leftovers
from fednuclei.hooks import ProjectLockHook
from fednuclei.project_lock import LOCK_FILE, ProjectLock, ProjectLocked
from tests.sample_data import killed_write


def _folder(path, content: bytes):
    path.mkdir(parents=True)
    (path / "tile.png").write_bytes(content)
    return path


def test_a_killed_write_leaves_its_staging_beside_the_untouched_target(tmp_path):
    tiles = _folder(tmp_path / "tiles", b"old")
    staging = killed_write(tiles)
    assert staging.name.startswith(".tiles.") and (staging / "half.png").is_file()
    assert (tiles / "tile.png").read_bytes() == b"old"
    registry = tmp_path / "registry.json"
    registry.write_text("{}")
    staging_file = killed_write(registry, "file")
    assert staging_file.name.startswith(".registry.json.") and registry.read_text() == "{}"


def test_leftovers_are_removed_and_nothing_else(tmp_path):
    data = tmp_path / "data"
    tiles = _folder(data / "03_primary" / "tiles", b"old")
    leftovers = [killed_write(tiles), killed_write(data / "freshness.json", "file")]
    kept = [data / "03_primary" / ".gitkeep", data / ".kedro_run.lock", data / "03_primary" / ".notes.md",
            data / "01_raw" / "tnbc" / ".Slide_01.abcdefgh"]  # raw data is never looked into
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    assert sorted(remove_staging_leftovers(data, keep_out=(data / "01_raw",))) == sorted(leftovers)
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in kept) and (tiles / "tile.png").read_bytes() == b"old"


def test_a_folder_cut_between_the_two_renames_of_its_swap_is_put_back(tmp_path):
    _folder(tmp_path / ".tiles.old-4242", b"old")  # the target, moved aside; the new one not yet moved in
    new = _folder(tmp_path / ".tiles.k2j4h5g6", b"new")
    assert sorted(remove_staging_leftovers(tmp_path)) == sorted([tmp_path / ".tiles.old-4242", new])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiles"]
    assert (tmp_path / "tiles" / "tile.png").read_bytes() == b"old"


def test_the_next_run_removes_leftovers_of_a_killed_one_while_it_holds_the_project_lock(tmp_path, caplog):
    data = tmp_path / "data"
    staging = killed_write(_folder(data / "03_primary" / "tiles", b"old"))
    hooks = _create_hook_manager()
    hooks.register(ProjectLockHook())
    run = {"run_params": {"project_path": str(tmp_path)}, "pipeline": Pipeline([]), "catalog": DataCatalog()}

    with caplog.at_level(logging.INFO, logger="fednuclei.hooks"):
        hooks.hook.before_pipeline_run(**run)
    assert not staging.exists()
    assert f"Removed 1 leftovers of interrupted writes: data/03_primary/{staging.name}" in caplog.text
    with pytest.raises(ProjectLocked, match=f"PID {os.getpid()}"):  # held until the run ends
        ProjectLock(tmp_path / LOCK_FILE).acquire()
    hooks.hook.after_pipeline_run(run_result={}, **run)
    with ProjectLock(tmp_path / LOCK_FILE):  # given back
        pass


def test_atomic_writes_make_ordinary_files_and_folders(tmp_path):
    with atomic_file(tmp_path / "settings.json") as staging:
        staging.write_text("{}")
    with atomic_folder(tmp_path / "tiles") as staging:
        (staging / "a.png").write_bytes(b"")
    assert stat.S_IMODE((tmp_path / "settings.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "tiles").stat().st_mode) == 0o755
