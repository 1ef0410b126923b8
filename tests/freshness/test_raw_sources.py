"""New files in a raw source folder make ingestion stale."""

import numpy as np
import pytest
from PIL import Image

from fednuclei.data.synthetic import generate_synthetic_tiles

from .project import copy_project, run_kedro

CATALOG = """
raw_tiles:
  type: fednuclei.datasets.TileSourcesDataset
  sources:
    synthetic: {format: synthetic, n_hospitals: 1, tiles_per_hospital: 2, size: 64, seed: 0}
    clinic: {format: folder, path: data/01_raw/clinic}
"""
# What ingestion checks against the tiles: one client of the synthetic hospital, patches that fit its tiles.
PARAMETERS = """
clients: [{name: hospital_0, source: synthetic, groups: [hospital_0], supervision: pixel}]
patches: {size: 32, stride: 32}
"""


def _write_pairs(folder, tiles):
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for tile in tiles:
        Image.fromarray(tile.image).save(folder / "images" / f"{tile.name}.png")
        Image.fromarray((tile.instances > 0).astype(np.uint8) * 255).save(folder / "masks" / f"{tile.name}.png")


@pytest.mark.slow
def test_new_raw_files_make_ingestion_stale(tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "conf" / "local").mkdir(exist_ok=True)
    (project / "conf" / "local" / "catalog.yml").write_text(CATALOG)
    (project / "conf" / "local" / "parameters.yml").write_text(PARAMETERS)
    tiles = generate_synthetic_tiles(n_hospitals=1, tiles_per_hospital=3, size=32, seed=1, nuclei_per_tile=(2, 5))
    clinic = project / "data" / "01_raw" / "clinic"
    _write_pairs(clinic, tiles[:2])

    assert run_kedro(project, "run", "--nodes", "ingest_tiles").check().ran == {"ingest_tiles"}
    rerun = run_kedro(project, "run", "--nodes", "ingest_tiles").check()
    assert rerun.ran == set() and rerun.decisions == {"ingest_tiles": "fresh, skipped"}
    _write_pairs(clinic, tiles[2:])
    rerun = run_kedro(project, "run", "--nodes", "ingest_tiles").check()
    assert rerun.ran == {"ingest_tiles"}
    assert rerun.decisions == {"ingest_tiles": "stale: input raw_tiles changed"}
