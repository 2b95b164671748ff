"""StyleGANEX's translation data (src/datamodules/translation.py): the synthetic faces' label maps written
beside them (19 classes, sketches in the official polarity), batches whose `lq` is the label map's picture and
reads back exactly, the paired real folders with their one-line errors, and XDoG sketches of photos."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.datamodules.face_labels import CELEBAMASK_LABELS, NOT_RENDERED, one_hot, to_celebamask
from facezoo.datamodules.sketch import pencil_sketch
from facezoo.datamodules.synthetic.renderer import render_faces
from facezoo.datamodules.synthetic.writers import write_faces
from facezoo.datamodules.translation import TranslationDataModule, parsing_input, sketch_input
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import read_rgb_uint8
from helpers import first_batch


def _module(root, labels, **args):
    return TranslationDataModule(str(root), labels=labels, batch_size=3, seed=0, **args)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Three splits of 4 synthetic 32 px faces with their label maps."""
    root = tmp_path_factory.mktemp("labelled")
    module = _module(root, "parsing", synthetic={"size": 32, "seed": 0, "train": 4, "val": 4, "test": 4,
                                                  "labels": True})
    module.prepare_data()
    return root


def test_synthetic_label_maps_are_written_beside_the_faces(synthetic):
    train = synthetic / "train"
    faces = render_faces(range(4), 32, 0)
    assert json.loads((train / "DONE.json").read_text())["labels"] is True
    for i in range(4):
        parsing = np.asarray(Image.open(train / "parsing" / f"{i:05d}.png"))
        sketch = np.asarray(Image.open(train / "sketch" / f"{i:05d}.png"))
        assert parsing.dtype == np.uint8 and parsing.shape == (32, 32)
        assert np.array_equal(parsing, to_celebamask(faces["parsing"][i : i + 1])[0].numpy())
        assert not set(np.unique(parsing)) & {CELEBAMASK_LABELS.index(n) for n in NOT_RENDERED}
        lines = faces["sketch"][i, 0].numpy()
        assert np.abs(sketch / 255.0 - (1 - lines)).max() <= 0.5 / 255 + 1e-6  # dark lines on white
        assert sketch.mean() > 127  # mostly white paper
    mtime = (train / "parsing" / "00000.png").stat().st_mtime_ns
    write_faces(train, 4, size=32, seed=0, labels=True)  # the same options: nothing is rewritten
    assert (train / "parsing" / "00000.png").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("labels", ["parsing", "sketch"])
def test_batches_carry_the_label_map_picture_that_reads_back_exactly(synthetic, labels):
    batch = first_batch(_module(synthetic, labels))
    lq, hq = batch["lq"], batch["hq"]
    assert lq.shape == hq.shape == (3, 3, 32, 32) and lq.dtype == torch.float32
    names = [f"{int(i):05d}" for i in batch["index"]]
    files = [np.asarray(Image.open(synthetic / "train" / labels / f"{n}.png")) for n in names]
    if labels == "parsing":
        x = parsing_input(lq)
        assert x.shape == (3, 19, 32, 32) and torch.equal(x.sum(1), torch.ones(3, 32, 32))  # one-hot
        assert torch.equal(x, one_hot(torch.from_numpy(np.stack(files)).long()))
    else:
        x = sketch_input(lq)
        assert x.shape == (3, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
        expected = torch.from_numpy(np.stack(files)).float()[:, None] / 255  # official ToTensor of the file
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_sketches_of_photos_are_made_on_the_device(synthetic):
    batch = first_batch(_module(synthetic, "xdog"))
    expected = 1 - pencil_sketch(batch["hq"])  # official polarity: dark lines on white
    torch.testing.assert_close(sketch_input(batch["lq"]), expected, atol=1e-5, rtol=0)
    assert expected.mean() > 0.5


def _pairs(root, n=3, size=16):
    for split in ("train", "val", "test"):
        for folder in ("faces", "labels"):
            (root / folder / split).mkdir(parents=True)
        for i in range(n):
            face = np.full((size, size, 3), 40 * i, np.uint8)
            Image.fromarray(face).save(root / "faces" / split / f"f{i}.png")
            labels = np.full((size, size), i, np.uint8)
            Image.fromarray(labels).save(root / "labels" / split / f"f{i}.png")


def test_paired_real_folders_and_their_one_line_errors(tmp_path):
    _pairs(tmp_path)
    module = _module(tmp_path / "faces", "parsing", label_dir=str(tmp_path / "labels"), image_size=8)
    batch = first_batch(module)
    assert batch["lq"].shape == (3, 3, 8, 8)  # the maps resized with their faces (nearest neighbour)
    assert sorted(parsing_input(batch["lq"]).argmax(1).flatten(1)[:, 0].tolist()) == [0, 1, 2]

    def refused(match):
        with pytest.raises(DataError) as err:
            _module(tmp_path / "faces", "parsing", label_dir=str(tmp_path / "labels")).setup("fit")
        assert "\n" not in str(err.value)
        assert err.match(match)

    (tmp_path / "labels" / "train" / "f1.png").unlink()  # a face without its map
    refused(r"faces/train/f1.png: no partner in .*labels/train")
    Image.fromarray(np.full((16, 16), 19, np.uint8)).save(tmp_path / "labels" / "train" / "f1.png")
    refused(r"labels/train/f1.png: labels up to 19; expected 0..18")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "labels" / "train" / "f1.png")
    refused(r"labels/train/f1.png: a RGB image; expected a parsing map as an 8-bit one-channel label PNG")
    (tmp_path / "labels" / "train" / "f1.png").write_bytes(b"not a png")
    refused(r"labels/train/f1.png: not a readable image")
    with pytest.raises(ConfigError, match="datamodule.labels=edges: expected one of parsing, sketch, xdog"):
        _module(tmp_path / "faces", "edges")


def test_mask_to_face_refuses_pictures_that_are_not_parsing_maps():
    photo = torch.from_numpy(read_rgb_uint8_like()).float() / 127.5 - 1
    with pytest.raises(DataError, match="got colours"):
        parsing_input(photo)
    with pytest.raises(DataError, match="levels up to 200"):
        parsing_input(torch.full((1, 3, 8, 8), 200 / 127.5 - 1))


def read_rgb_uint8_like() -> np.ndarray:
    """A (1, 3, 8, 8) colour picture."""
    return np.stack([np.full((8, 8), v, np.uint8) for v in (10, 200, 30)])[None]


def test_the_official_example_mask_reads_as_its_labels(tmp_path):
    labels = np.random.default_rng(0).integers(0, 19, (24, 40)).astype(np.uint8)
    Image.fromarray(labels, mode="L").save(tmp_path / "mask.png")  # StyleGANEX's data/*_mask.png: mode L
    picture = torch.from_numpy(read_rgb_uint8(tmp_path / "mask.png")).permute(2, 0, 1)[None] / 127.5 - 1
    assert torch.equal(parsing_input(picture).argmax(1)[0], torch.from_numpy(labels).long())
