"""Facial-component boxes (src/datamodules/boxes.py) and their way through RestoreDataModule, horizontal
flips included. Tiny synthetic faces (64 px) and a fake GFP-GAN landmarks file written by the tests."""

import shutil

import numpy as np
import pytest
import torch

from facezoo.datamodules.batch import COMPONENTS, scale_boxes
from facezoo.datamodules.boxes import (
    ComponentBoxes,
    canonical_boxes,
    hflip_boxes,
    landmark_key,
    load_boxes_json,
    load_gfpgan_landmarks,
)
from facezoo.datamodules.restore import RestoreDataModule
from facezoo.utils.errors import DataError
from facezoo.utils.image_io import to_float
from helpers import SeenDegradation

S = 64
LEFT, RIGHT, NOSE, MOUTH = (COMPONENTS.index(c) for c in ("left_eye", "right_eye", "nose", "mouth"))


def landmarks(index: int) -> dict:
    """One entry of GFP-GAN's landmarks file at 512 px, numpy scalars like parse_landmark.py's."""
    shift = np.float64(3 * index)
    return {
        "left_eye": [np.float64(190) + shift, np.float64(240), np.float64(20)],
        "right_eye": [np.float64(320) - shift, np.float64(241), np.float64(22)],
        "mouth": [np.float64(256), np.float64(370) + shift, np.float64(50)],
    }


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Synthetic faces: train 8, val 4, test 2 at 64 px (boxes.json beside them)."""
    root = tmp_path_factory.mktemp("faces")
    synthetic = {"size": S, "train": 8, "val": 4, "test": 2}
    RestoreDataModule(root, SeenDegradation(), synthetic=synthetic).prepare_data()
    return root


@pytest.fixture(scope="module")
def trainer():
    import pytorch_lightning as pl

    quiet = {"enable_progress_bar": False, "enable_checkpointing": False, "enable_model_summary": False}
    return pl.Trainer(logger=False, **quiet)


def datamodule(root, trainer=None, **kwargs) -> RestoreDataModule:
    dm = RestoreDataModule(root, SeenDegradation(), batch_size=8, eval_batch_size=4, **kwargs)
    dm.trainer = trainer
    dm.setup()
    return dm


def transfer(dm, batch, trainer, training: bool) -> dict:
    """`on_after_batch_transfer` as Lightning calls it in a training (or a validation) loop."""
    trainer.training = training
    trainer.validating = not training
    return dm.on_after_batch_transfer(batch, 0)


# ------------------------------------------------------------------------------------------- canonical boxes
def test_canonical_boxes_follow_the_template_and_scale():
    big, small = canonical_boxes(512), canonical_boxes(256)
    assert big.shape == (4, 4) and big.dtype == torch.float32
    centres = (big[:, :2] + big[:, 2:]) / 2 - 0.5  # boxes are (c - h + 1, c + h)
    assert torch.allclose(centres[LEFT], torch.tensor([192.98138, 239.94708]))
    mouth = torch.tensor([(201.26117 + 313.08905) / 2, (371.41043 + 371.15118) / 2])
    assert torch.allclose(centres[MOUTH], mouth)
    assert centres[LEFT, 0] < centres[NOSE, 0] < centres[RIGHT, 0]
    assert centres[LEFT, 1] < centres[NOSE, 1] < centres[MOUTH, 1]
    assert (big >= 0).all() and (big < 512).all()
    # half sizes: eyes 24 × eye_enlarge, nose 32 (a box spans 2h - 1 between pixel centres)
    widths = big[:, 2:] - big[:, :2]
    assert torch.allclose(widths[:NOSE + 1], torch.tensor([2 * 24 * 1.4 - 1] * 4 + [63.0] * 2).view(3, 2))
    mouth_half = (torch.tensor([313.08905, 371.15118]) - torch.tensor([201.26117, 371.41043])).norm() / 2
    assert torch.allclose(widths[MOUTH], (2 * mouth_half - 1).expand(2))
    plain = canonical_boxes(512, eye_enlarge=1.0)
    assert torch.allclose(plain[LEFT, 2:] - plain[LEFT, :2], torch.tensor([47.0, 47.0]))
    # a resized image: pixel centres (x + 0.5) scale with the size
    assert torch.allclose((small + 0.5) * 2, big + 0.5, atol=1e-4)


# ------------------------------------------------------------------------------------------- landmarks file
def test_gfpgan_landmarks_round_trip(tmp_path):
    path = tmp_path / "FFHQ_eye_mouth_landmarks_512.pth"
    torch.save({f"{i:08d}": landmarks(i) for i in range(3)}, path)
    table = load_gfpgan_landmarks(path)
    assert sorted(table) == ["00000000", "00000001", "00000002"]
    boxes = table["00000001"]
    assert boxes.shape == (4, 4) and boxes.dtype == torch.float32
    h = 20 * 1.4  # eyes enlarged, as get_component_coordinates does
    assert torch.allclose(boxes[LEFT], torch.tensor([193 - h + 1, 240 - h + 1, 193 + h, 240 + h]))
    h = 22 * 1.4
    assert torch.allclose(boxes[RIGHT], torch.tensor([317 - h + 1, 241 - h + 1, 317 + h, 241 + h]))
    assert torch.equal(boxes[MOUTH], torch.tensor([256 - 50 + 1, 373 - 50 + 1, 256 + 50, 373 + 50.0]))
    assert torch.equal(boxes[NOSE], canonical_boxes(512)[NOSE])  # the file has no nose
    plain = load_gfpgan_landmarks(path, eye_enlarge=1.0)["00000001"]
    assert torch.equal(plain[LEFT], torch.tensor([193 - 19, 240 - 19, 193 + 20, 240 + 20.0]))
    assert landmark_key("00042") == landmark_key("00000042") == "00000042"
    assert landmark_key("face_a") == "face_a"


def test_landmark_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.pth"
    with pytest.raises(DataError, match="absent.pth"):
        load_gfpgan_landmarks(missing)
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    with pytest.raises(DataError, match=r"list\.pth.*found list"):
        load_gfpgan_landmarks(listed)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="garbage.pth: not a readable"):
        load_gfpgan_landmarks(garbage)
    no_mouth = tmp_path / "no_mouth.pth"
    torch.save({"00000000": {"left_eye": [1.0, 2.0, 3.0], "right_eye": [1.0, 2.0, 3.0]}}, no_mouth)
    with pytest.raises(DataError, match="no_mouth.pth: entry '00000000'"):
        load_gfpgan_landmarks(no_mouth)


# ------------------------------------------------------------------------------------------- horizontal flip
def test_hflip_boxes_mirrors_swaps_and_undoes_itself():
    boxes = torch.rand(3, 4, 4) * 30
    boxes[..., 2:] += boxes[..., :2]
    flipped = torch.tensor([True, False, True])
    once = hflip_boxes(boxes, 64, flipped)
    assert torch.equal(once[1], boxes[1])  # not flipped: unchanged
    assert torch.equal(once[0, RIGHT], torch.stack([63 - boxes[0, LEFT, 2], boxes[0, LEFT, 1],
                                                    63 - boxes[0, LEFT, 0], boxes[0, LEFT, 3]]))
    assert torch.equal(once[2, LEFT, [1, 3]], boxes[2, RIGHT, [1, 3]])
    assert torch.equal(once[2, MOUTH, 0], 63 - boxes[2, MOUTH, 2])
    assert torch.allclose(hflip_boxes(once, 64, flipped), boxes)


def test_flipped_box_lands_on_the_flipped_pixels():
    height, width = 24, 40  # not square: the mirror uses the width
    boxes = torch.tensor([[[3.0, 5, 9, 8], [25, 5, 31, 9], [15, 10, 20, 14], [12, 16, 27, 21]]])
    image = torch.zeros(1, 3, height, width)
    x1, y1, x2, y2 = boxes[0, LEFT].long().tolist()
    image[..., y1:y2 + 1, x1:x2 + 1] = 1.0  # a bright square exactly on the left eye's pixels
    mirrored = hflip_boxes(boxes, width, torch.tensor([True]))[0, RIGHT]  # the same eye, now on the right
    x1, y1, x2, y2 = mirrored.long().tolist()
    assert torch.equal(mirrored, mirrored.round())
    flipped = image.flip(-1)
    assert (flipped[..., y1:y2 + 1, x1:x2 + 1] == 1).all()
    assert flipped.sum() == flipped[..., y1:y2 + 1, x1:x2 + 1].sum()  # and nothing bright outside it


# ------------------------------------------------------------------------------------------- datamodule
def test_synthetic_batches_carry_boxes_in_loaded_pixels(faces):
    written = load_boxes_json(faces / "train")
    assert load_boxes_json(faces / "nowhere") is None
    dm = datamodule(faces, component_boxes="auto")
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch["boxes"].shape == (4, 4, 4) and batch["boxes"].dtype == torch.float32
    expected = torch.stack([load_boxes_json(faces / "val")[f"{int(i):05d}"] for i in batch["index"]])
    assert torch.equal(batch["boxes"], expected)
    # images resized on load (64 -> 32 px): boxes follow
    small = datamodule(faces, component_boxes="auto", image_size=32)
    batch = next(iter(small.train_dataloader()))
    assert batch["hq"].shape[-1] == 32
    expected = torch.stack([written[f"{int(i):05d}"] for i in batch["index"]])
    assert torch.allclose(batch["boxes"], scale_boxes(expected, 0.5))
    assert "boxes" not in next(iter(datamodule(faces).val_dataloader()))  # component_boxes null: none


def test_landmarks_file_in_a_datamodule(faces, tmp_path):
    path = tmp_path / "landmarks.pth"
    torch.save({f"{i:08d}": landmarks(i) for i in range(8)}, path)  # FFHQ stems '00003' find '00000003'
    dm = datamodule(faces, component_boxes=str(path))
    batch = next(iter(dm.train_dataloader()))
    table = load_gfpgan_landmarks(path)
    expected = torch.stack([table[f"{int(i):08d}"] for i in batch["index"]])
    assert torch.allclose(batch["boxes"], scale_boxes(expected, S / 512))
    torch.save({f"{i:08d}": landmarks(i) for i in range(8) if i != 5}, path)
    with pytest.raises(DataError, match=r"00005\.png: no component boxes in .*landmarks\.pth"):
        datamodule(faces, component_boxes=str(path))
    assert ComponentBoxes(table, key=landmark_key)("00002", None, (512, 512)).equal(table["00000002"])


def test_paired_test_folders_get_canonical_boxes(faces, tmp_path):
    shutil.copytree(faces / "test", tmp_path / "lq")
    dm = datamodule(faces, component_boxes="canonical", test_lq_dir=str(tmp_path / "lq"),
                    test_hq_dir=str(faces / "test"))
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert "lq" in batch and torch.allclose(batch["boxes"], canonical_boxes(S).expand(2, 4, 4))


def test_training_batches_flip_hq_and_boxes_together(faces, trainer):
    dm = datamodule(faces, trainer, component_boxes="auto", use_hflip=True, seed=1)
    raw = next(iter(dm.train_dataloader()))
    plain = transfer(dm, raw, trainer, training=False)  # outside training: never flipped
    assert torch.equal(plain["hq"], to_float(raw["hq"]))
    train = transfer(dm, raw, trainer, training=True)
    flipped = torch.tensor([not torch.equal(a, b) for a, b in zip(train["hq"], plain["hq"], strict=True)])
    assert flipped.any() and not flipped.all()  # this seed flips some of the 8 samples
    assert torch.equal(train["hq"][flipped], plain["hq"][flipped].flip(-1))
    assert torch.equal(train["boxes"], hflip_boxes(plain["boxes"], S, flipped))
    assert torch.equal(train["lq"], train["hq"])  # the degradation saw the flipped faces
    again = transfer(dm, raw, trainer, training=True)  # same batch seed, same flips
    assert torch.equal(again["hq"], train["hq"]) and torch.equal(again["boxes"], train["boxes"])
    other = datamodule(faces, trainer, component_boxes="auto", use_hflip=True, seed=1)  # a new run
    fresh = transfer(other, next(iter(other.train_dataloader())), trainer, training=True)
    assert torch.equal(fresh["hq"], train["hq"])


def test_validation_batches_never_flip(faces, trainer):
    dm = datamodule(faces, trainer, component_boxes="auto", use_hflip=True)
    for raw in dm.val_dataloader():
        batch = transfer(dm, raw, trainer, training=False)
        assert torch.equal(batch["hq"], to_float(raw["hq"])) and torch.equal(batch["boxes"], raw["boxes"])
