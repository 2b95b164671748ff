"""Folder data: format conversions, and bad input reported by file name (or skipped and counted)."""

import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.datamodules.folders import ImageFolder, PairedImageFolders, RetouchFolder
from facezoo.datamodules.retouch import RetouchDataModule
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import read_rgb_uint8


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def make_ffhqr(root, names=("a", "b", "c"), size=16, with_mask=True):
    rng = np.random.default_rng(0)
    for name in names:
        for sub in ("source", "target"):
            _save(root / sub / f"{name}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        if with_mask:
            _save(root / "mask" / f"{name}.png", rng.integers(0, 255, (size, size), dtype=np.uint8))
    return root


def test_gray_rgba_and_16bit_are_read_as_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    _save(tmp_path / "gray.png", gray)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[0, 0, 3] = 0  # transparent pixel -> black
    _save(tmp_path / "rgba.png", rgba)
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")

    g = read_rgb_uint8(tmp_path / "gray.png")
    assert (
        g.shape == (8, 8, 3)
        and g.dtype == np.uint8
        and (g[..., 0] == gray).all()
        and (g[..., 2] == gray).all()
    )
    r = read_rgb_uint8(tmp_path / "rgba.png")
    assert r.shape == (8, 8, 3) and r[1, 1, 0] == 200 and r[0, 0, 0] == 0
    d = read_rgb_uint8(tmp_path / "deep.png")
    assert d.dtype == np.uint8 and d.max() == 245 and d[0, 0, 0] == 0  # round(63000 / 65535 * 255)


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
