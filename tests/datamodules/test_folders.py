"""Folder data: pairing, resizing, and bad input reported by file name at setup (or skipped and counted)."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.datamodules import folders
from facezoo.datamodules.folders import ImageFolder, PairedImageFolders, RetouchFolder
from facezoo.datamodules.restore import RestoreDataModule
from facezoo.datamodules.retouch import RetouchDataModule
from facezoo.utils.errors import ConfigError, DataError, WriteError
from facezoo.utils.image_io import decoded_size as decode


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _truncated_jpeg(path):
    """A JPEG cut to half its bytes, as an interrupted copy leaves it: its header is whole (64 px are enough
    for that), so PIL's verify() passes it and only a decode finds the cut."""
    _save(path, _noise(64, 64))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def make_ffhqr(root, names=("a", "b", "c"), size=16, with_mask=True):
    rng = np.random.default_rng(0)
    for name in names:
        for sub in ("source", "target"):
            _save(root / sub / f"{name}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        if with_mask:
            _save(root / "mask" / f"{name}.png", rng.integers(0, 255, (size, size), dtype=np.uint8))
    return root


def test_retouch_folder_pairs_by_stem_and_resizes(tmp_path):
    folder = RetouchFolder(make_ffhqr(tmp_path / "train"), image_size=8)
    assert folder.names == ["a", "b", "c"] and folder.has_mask
    item = folder.pair("b")
    assert (
        item["raw"].shape == (3, 8, 8)
        and item["raw"].dtype == torch.uint8
        and item["mask"].shape == (1, 8, 8)
    )


def test_missing_partner_is_named(tmp_path):
    root = make_ffhqr(tmp_path / "train")
    (root / "target" / "b.png").unlink()
    with pytest.raises(DataError, match=r"source/b\.png: no partner in .*target"):
        RetouchFolder(root)
    folder = RetouchFolder(root, skip_bad=True)
    assert folder.names == ["a", "c"] and len(folder.report.skipped) == 1


def test_corrupt_file_is_named(tmp_path):
    root = make_ffhqr(tmp_path / "train")
    (root / "source" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(DataError, match=r"source/c\.png: not a readable image"):
        RetouchFolder(root)
    assert RetouchFolder(root, skip_bad=True).names == ["a", "b"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nowhere/source: folder not found"):
        RetouchFolder(tmp_path / "nowhere")
    dm = RetouchDataModule(str(tmp_path / "absent"), gamma=0.5)
    with pytest.raises(DataError, match=r"absent: data folder not found"):
        dm.setup("fit")


def test_invalid_gamma_fails_at_construction(tmp_path):
    with pytest.raises(ConfigError, match=r"split\.gamma=1\.5"):
        RetouchDataModule(str(tmp_path), gamma=1.5)


def test_paired_lq_hq_folders(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("x", "y"):
        _save(tmp_path / "hq" / f"{name}.png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        _save(tmp_path / "lq" / f"{name}.png", rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))
    pairs = PairedImageFolders(tmp_path / "lq", tmp_path / "hq")
    item = pairs.pair("x")
    assert item["lq"].shape == item["hq"].shape == (3, 16, 16)
    _save(tmp_path / "hq" / "z.png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"hq/z\.png: no partner"):
        PairedImageFolders(tmp_path / "lq", tmp_path / "hq")
    assert ImageFolder(tmp_path / "hq").names == ["x", "y", "z"]


def test_truncated_jpeg_is_refused_at_setup_or_skipped(tmp_path, caplog):
    root = make_ffhqr(tmp_path / "train", with_mask=False)
    (root / "target" / "b.png").unlink()
    _truncated_jpeg(root / "target" / "b.jpg")
    with pytest.raises(
        DataError, match=r"target/b\.jpg: not a readable image \(OSError: image file is truncated"
    ):
        RetouchFolder(root)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        folder = RetouchFolder(root, skip_bad=True)
    assert folder.names == ["a", "c"] and len(folder.report.skipped) == 1
    assert "skipped 1 bad files, using 2" in caplog.text
    assert f"{root}: checked 6 images in" in caplog.text  # one line for the folder, with the time it took
    assert RetouchFolder(root, verify=False).names == ["a", "b", "c"]  # verify_images=false: no check


def test_two_files_for_one_name_are_refused(tmp_path):
    root = make_ffhqr(tmp_path / "train", with_mask=False)
    _save(root / "source" / "a.jpg", _noise(16, 16))
    with pytest.raises(DataError, match=r"source: a\.jpg, a\.png share the name 'a'"):
        RetouchFolder(root)
    assert RetouchFolder(root, skip_bad=True).names == ["b", "c"]


def test_pair_of_different_sizes_is_refused_or_skipped(tmp_path):
    root = make_ffhqr(tmp_path / "train")
    _save(root / "target" / "b.png", _noise(16, 12))
    with pytest.raises(DataError, match=r"source/b\.png is 16x16 but its partner .*target/b\.png is 12x16"):
        RetouchFolder(root, image_size=8)
    assert RetouchFolder(root, image_size=8, skip_bad=True).names == ["a", "c"]
    _save(root / "mask" / "c.png", np.zeros((8, 8), np.uint8))  # a mask has its source's size too
    folder = RetouchFolder(root, image_size=8, skip_bad=True)
    assert folder.names == ["a"] and "source/c.png is 16x16 but its partner" in folder.report.skipped[-1]
    assert folder.report.skipped[-1].endswith("mask/c.png is 8x8 (expected the same size)")
    assert RetouchFolder(root, image_size=8, skip_bad=True, verify=False).names == ["a", "b", "c"]


def test_lq_of_another_aspect_is_warned_once_per_folder(tmp_path, caplog):
    for i, name in enumerate(("w", "x", "y", "z")):
        _save(tmp_path / "hq" / f"{name}.png", _noise(16, 24, i))
    _save(tmp_path / "lq" / "w.png", _noise(4, 6))  # a quarter of the HQ size, same aspect: normal
    _save(tmp_path / "lq" / "x.png", _noise(4, 7))  # rounding of a downscale (4 x 6.x)
    for name in ("y", "z"):
        _save(tmp_path / "lq" / f"{name}.png", _noise(8, 8))
    with caplog.at_level(logging.WARNING, logger="facezoo"):
        pairs = PairedImageFolders(tmp_path / "lq", tmp_path / "hq")
    warnings = [r.getMessage() for r in caplog.records if "aspect ratio" in r.getMessage()]
    assert (
        len(warnings) == 1
        and "2 of 4 LQ images" in warnings[0]
        and "y.png is 8x8, its HQ 24x16" in warnings[0]
    )
    item = pairs.pair("y")  # stretched to its HQ's (height, width), not to a square
    assert item["lq"].shape == item["hq"].shape == (3, 16, 24)


def _retouch_data(root):
    """FFHQR-layout train/val/test whose test target c.jpg is truncated; a datamodule factory."""
    for split in ("train", "val", "test"):
        make_ffhqr(root / split, names=("a", "b"), with_mask=False)
    _save(root / "test" / "source" / "c.png", _noise(64, 64))
    _truncated_jpeg(root / "test" / "target" / "c.jpg")
    return lambda **kwargs: RetouchDataModule(str(root), gamma=1.0, **kwargs)


def _restore_data(root):
    """HQ train/val/test folders whose test image c.jpg is truncated; a datamodule factory."""
    for split in ("train", "val", "test"):
        for name in ("a", "b"):
            _save(root / split / f"{name}.png", _noise(16, 16))
    _truncated_jpeg(root / "test" / "c.jpg")
    return lambda **kwargs: RestoreDataModule(str(root), torch.nn.Identity(), **kwargs)


@pytest.mark.parametrize("make_data", [_retouch_data, _restore_data], ids=["retouch", "restore"])
def test_fit_setup_checks_the_test_split_too(tmp_path, make_data):
    datamodule = make_data(tmp_path)
    with pytest.raises(DataError, match=r"test/.*c\.jpg: not a readable image"):
        datamodule().setup("fit")
    dm = datamodule(skip_bad=True)
    dm.setup("fit")
    assert dm.folders["test"].names == ["a", "b"]
    datamodule(verify_images=False).setup("fit")  # the check off: nothing decoded, nothing refused


def test_fit_setup_checks_a_paired_test_set(tmp_path):
    for split in ("train", "val"):
        _save(tmp_path / "data" / split / "a.png", _noise(16, 16))
    _save(tmp_path / "hq" / "a.png", _noise(16, 16))
    _truncated_jpeg(tmp_path / "lq" / "a.jpg")
    dm = RestoreDataModule(
        str(tmp_path / "data"),
        torch.nn.Identity(),
        test_lq_dir=str(tmp_path / "lq"),
        test_hq_dir=str(tmp_path / "hq"),
    )
    with pytest.raises(DataError, match=r"lq/a\.jpg: not a readable image"):
        dm.setup("fit")


def test_fit_without_a_test_split_warns(tmp_path, caplog):
    for split in ("train", "val"):
        make_ffhqr(tmp_path / split, with_mask=False)
    with caplog.at_level(logging.WARNING, logger="facezoo"):
        RetouchDataModule(str(tmp_path), gamma=1.0).setup("fit")
    assert f"{tmp_path}: no test split" in caplog.text
    with pytest.raises(DataError, match=r"test/source: folder not found"):
        RetouchDataModule(str(tmp_path), gamma=1.0).setup("test")


def test_unchanged_files_are_not_decoded_again(tmp_path, monkeypatch, caplog):
    root = make_ffhqr(tmp_path / "train", names=("a", "b"), with_mask=False)
    _save(root / "source" / "c.jpg", _noise(64, 64))  # a JPEG to cut later
    _save(root / "target" / "c.png", _noise(64, 64))
    decoded = []
    monkeypatch.setattr(folders, "decoded_size", lambda path: decoded.append(path.name) or decode(path))
    before = sorted(tmp_path.rglob("*"))
    RetouchFolder(root)
    assert len(decoded) == 6 and folders.checked_list(root).is_file()
    assert sorted(tmp_path.rglob("*")) == before  # the data folder is not written to
    decoded.clear()
    with caplog.at_level(logging.INFO, logger="facezoo"):
        RetouchFolder(root)
    assert decoded == [] and "checked 6 images in" in caplog.text and "(6 unchanged" in caplog.text
    (root / "source" / "c.jpg").write_bytes((root / "source" / "c.jpg").read_bytes()[:-400])  # cut after
    with pytest.raises(DataError, match=r"source/c\.jpg: not a readable image"):
        RetouchFolder(root)
    assert decoded == ["c.jpg"]

    def read_only(path, text):
        raise WriteError(f"{path}: could not write (Read-only file system)")

    monkeypatch.setattr(folders, "write_text", read_only)
    folders.checked_list(root).unlink()
    decoded.clear()
    assert RetouchFolder(root, skip_bad=True).names == ["a", "b"]  # a cache it cannot write to: checked
    assert len(decoded) == 6 and not folders.checked_list(root).exists()


def test_a_long_check_shows_its_progress(tmp_path, monkeypatch, caplog):
    root = make_ffhqr(tmp_path / "train", names=("a", "b", "c"), with_mask=False)
    monkeypatch.setattr(folders, "SHOW_PROGRESS_FROM", 6)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        assert RetouchFolder(root).names == ["a", "b", "c"]
    assert f"checking {root}: 6 images" in caplog.text and f"checking {root}: 6 images in" in caplog.text
