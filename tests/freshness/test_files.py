"""Signatures of files and folders."""

import os

from fednuclei.freshness.files import CONTENT_HASH_LIMIT, path_signature


def test_a_small_file_is_signed_by_its_content(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    signature = path_signature(table)
    table.write_text("a,b\n1,2\n")
    os.utime(table, ns=(1, 1))
    assert path_signature(table) == signature
    table.write_text("a,b\n1,3\n")
    assert path_signature(table) != signature
    assert path_signature(tmp_path / "absent.csv") is None


def test_a_large_file_and_a_folder_are_signed_by_sizes_and_times(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(bytes(CONTENT_HASH_LIMIT + 1))
    signature = path_signature(model)
    assert signature.startswith("stat:")
    os.utime(model, ns=(1, 1))
    assert path_signature(model) != signature

    folder = tmp_path / "tiles"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(b"png")
    signature = path_signature(folder)
    assert path_signature(folder) == signature
    (folder / "images" / "b.png").write_bytes(b"png")
    assert path_signature(folder) != signature
    signature = path_signature(folder)
    (folder / "images" / "b.png").write_bytes(b"PNG")
    os.utime(folder / "images" / "b.png", ns=(2, 2))
    assert path_signature(folder) != signature


def test_a_linked_folder_is_signed_by_what_it_points_to(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "a.tif").write_bytes(b"tif")
    (tmp_path / "raw").symlink_to(tmp_path / "dataset")
    signature = path_signature(tmp_path / "raw")
    (tmp_path / "dataset" / "b.tif").write_bytes(b"tif")
    assert path_signature(tmp_path / "raw") != signature


def test_a_path_below_a_file_is_absent(tmp_path):
    (tmp_path / "models").write_text("")  # a file where a folder of outputs should be
    assert path_signature(tmp_path / "models" / "run_settings.json") is None
