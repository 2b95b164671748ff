"""Procedural faces, blemishes and the synthetic folder writers (src/datamodules/synthetic/)."""

import json
import logging

import numpy as np
import pytest
import torch

from facezoo.datamodules.batch import COMPONENTS
from facezoo.datamodules.synthetic.blemishes import add_blemishes
from facezoo.datamodules.synthetic.renderer import PARSING_LABELS, render_faces
from facezoo.datamodules.synthetic.writers import main, write_faces, write_ffhqr
from facezoo.utils import console
from facezoo.utils.image_io import read_mask, read_rgb_uint8, to_uint8

S = 64
SKIN, BROWS, EYES, NOSE, LIPS, HAIR = (PARSING_LABELS.index(n) for n in PARSING_LABELS[1:])


@pytest.fixture(scope="module")
def faces():
    return render_faces(range(16), S, seed=0)


@pytest.fixture(scope="module")
def blemished(faces):
    return add_blemishes(faces["image"], faces["parsing"], range(16), seed=0)


def test_render_shapes_dtypes_ranges(faces):
    image, boxes, parsing, sketch = faces["image"], faces["boxes"], faces["parsing"], faces["sketch"]
    assert image.shape == (16, 3, S, S) and image.dtype == torch.float32
    assert boxes.shape == (16, len(COMPONENTS), 4) and boxes.dtype == torch.float32
    assert parsing.shape == (16, S, S) and parsing.dtype == torch.int64
    assert sketch.shape == (16, 1, S, S) and sketch.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.5 and image.max() > 0.5
    assert parsing.min() >= 0 and parsing.max() < len(PARSING_LABELS)
    assert sketch.min() >= 0 and sketch.max() <= 1
    lines = (sketch > 0.5).float().mean((1, 2, 3))
    assert (lines > 0.02).all() and (lines < 0.4).all()  # an edge map: thin lines, not empty, not filled
    assert (boxes >= 0).all() and (boxes <= S).all()
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()


def test_other_sizes_show_the_same_face():
    small, large = render_faces([7], 64)["image"], render_faces([7], 256)["image"]
    assert large.shape == (1, 3, 256, 256)
    down = torch.nn.functional.avg_pool2d(large, 4)
    assert (down - small).abs().mean() < 0.03


def test_render_is_deterministic_and_batch_independent():
    batch = render_faces([5, 3, 9], S, seed=1)
    again = render_faces(torch.tensor([5, 3, 9]), S, seed=1)
    alone = render_faces([3], S, seed=1)
    reordered = render_faces([9, 3], S, seed=1)
    for key in ("image", "boxes", "parsing", "sketch"):
        assert torch.equal(batch[key], again[key]), key
        assert torch.equal(batch[key][1:2], alone[key]), key
        assert torch.equal(batch[key][1], reordered[key][1]), key
        assert torch.equal(batch[key][2], reordered[key][0]), key
    other_seed = render_faces([3], S, seed=2)["image"]
    assert (other_seed - alone["image"]).abs().mean() > 0.05
    assert (batch["image"][0] - batch["image"][1]).abs().mean() > 0.05


def test_faces_vary_across_indices(faces):
    image, parsing = faces["image"], faces["parsing"]
    assert image.std(0).mean() > 0.2  # per-pixel spread across 16 identities
    skin_colour = torch.stack([image[i][:, parsing[i] == SKIN].mean(1) for i in range(16)])
    assert skin_colour.std(0).max() > 0.1  # skin tones differ
    hair_area = (parsing == HAIR).float().mean((1, 2))
    assert hair_area.max() - hair_area.min() > 0.08  # hair shapes differ
    widths = faces["boxes"][..., 2] - faces["boxes"][..., 0]
    assert (widths.std(0) > 0.06 * widths.mean(0)).all()  # eyes, noses and mouths of different sizes


def test_parsing_has_every_face_part(faces):
    for i in range(16):
        present = set(faces["parsing"][i].unique().tolist())
        assert {SKIN, BROWS, EYES, NOSE, LIPS, HAIR} <= present, (i, present)


def _inside(box, mask):
    x1, y1, x2, y2 = box.tolist()
    ys, xs = torch.nonzero(mask, as_tuple=True)
    xs, ys = xs.float() + 0.5, ys.float() + 0.5
    return ((xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)).float()


@pytest.mark.parametrize("size", [64, 128])
def test_boxes_cover_their_parts(size):
    out = render_faces(range(8), size)
    half = size // 2
    for i in range(8):
        boxes, parsing = out["boxes"][i], out["parsing"][i]
        eyes = parsing == EYES
        left, right = eyes.clone(), eyes.clone()
        left[:, half:], right[:, :half] = False, False
        for box, part in (
            (boxes[0], left),
            (boxes[1], right),
            (boxes[2], parsing == NOSE),
            (boxes[3], parsing == LIPS),
        ):
            inside = _inside(box, part)
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            assert inside.numel() > 0 and inside.mean() > 0.95  # the box holds (almost) all of its part
            assert inside.sum() > 0.15 * area  # ... and is not much larger than it
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / size
        assert centres[0, 0] < centres[1, 0]
        # aligned like FFHQ crops: eyes near (0.35, 0.4) and (0.65, 0.4)
        assert abs(centres[0, 0] - 0.35) < 0.04 and abs(centres[1, 0] - 0.65) < 0.04
        assert abs(centres[0, 1] - 0.4) < 0.04 and abs(centres[1, 1] - 0.4) < 0.04
        assert centres[0, 1] < centres[2, 1] < centres[3, 1]  # eyes above the nose above the mouth


def test_blemish_shapes_and_mask_semantics(faces, blemished):
    raw, mask = blemished
    clean, parsing = faces["image"], faces["parsing"]
    assert raw.shape == clean.shape and raw.dtype == torch.float32 and mask.shape == (16, 1, S, S)
    assert raw.min() >= -1 and raw.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
    diff = (raw - clean).abs().amax(1, keepdim=True)
    off_skin = (parsing != SKIN).unsqueeze(1)
    assert mask[off_skin].max() == 0 and diff[off_skin].max() == 0  # only skin changes
    assert diff[mask < 1e-3].max() < 0.02  # no mask -> raw equals clean
    assert diff[mask > 0.5].min() > 0.05  # strong mask -> a clearly visible change
    assert (mask.flatten(1).amax(1) > 0.5).all()  # every face has some blemish


def test_no_raw_face_equals_its_retouched_one():
    """Acne is on every face, so no pair is identical (an identical pair has an infinite PSNR); with seed 0,
    face 1035 drew no blemish of any other kind."""
    image = render_faces(range(1024, 1056), S)
    _, mask = add_blemishes(image["image"], image["parsing"], range(1024, 1056))
    assert (mask.flatten(1).amax(1) > 0.5).all()


def test_blemish_amount_varies(faces):
    image = render_faces(range(24), S)
    _, mask = add_blemishes(image["image"], image["parsing"], range(24))
    amount = mask.mean((1, 2, 3))
    assert amount.max() > 3 * amount.min()  # some faces mild, some heavy


def test_blemishes_follow_the_parsing_map(faces):
    parsing = torch.full_like(faces["parsing"][:2], PARSING_LABELS.index("background"))
    raw, mask = add_blemishes(faces["image"][:2], parsing, [0, 1])
    assert torch.equal(raw, faces["image"][:2]) and mask.max() == 0


def test_blemishes_are_deterministic(faces, blemished):
    raw, mask = blemished
    again = add_blemishes(faces["image"], faces["parsing"], range(16), seed=0)
    alone = add_blemishes(faces["image"][4:5], faces["parsing"][4:5], [4], seed=0)
    assert torch.equal(raw, again[0]) and torch.equal(mask, again[1])
    assert torch.equal(raw[4:5], alone[0]) and torch.equal(mask[4:5], alone[1])
    other = add_blemishes(faces["image"][4:5], faces["parsing"][4:5], [4], seed=1)
    assert not torch.equal(alone[1], other[1])
    with pytest.raises(ValueError):
        add_blemishes(faces["image"][:2], faces["parsing"][:2], [0])


def _names(folder):
    return sorted(p.stem for p in folder.glob("*.png"))


def test_write_ffhqr_layout(tmp_path):
    root = write_ffhqr(tmp_path / "ffhqr", {"train": 3, "val": 2, "test": 2}, size=32, seed=0, batch_size=2)
    seen = []
    for split in ("train", "val", "test"):
        names = _names(root / split / "source")
        assert names == _names(root / split / "target") == _names(root / split / "mask")
        boxes = json.loads((root / split / "boxes.json").read_text())
        assert sorted(boxes) == names
        assert all(np.asarray(b).shape == (4, 4) for b in boxes.values())
        seen += names
    assert seen == [f"{i:05d}" for i in range(7)]  # train, val, test: consecutive, disjoint ranges
    face = render_faces([3], 32)
    target = read_rgb_uint8(root / "val" / "target" / "00003.png")
    assert np.array_equal(target, to_uint8(face["image"][0]).permute(1, 2, 0).numpy())
    raw, mask = add_blemishes(face["image"], face["parsing"], [3])
    written_mask = read_mask(root / "val" / "mask" / "00003.png")
    assert np.abs(written_mask - mask[0, 0].numpy()).max() <= 0.5 / 255 + 1e-6
    source = read_rgb_uint8(root / "val" / "source" / "00003.png")
    assert np.array_equal(source, to_uint8(raw[0]).permute(1, 2, 0).numpy())
    boxes = json.loads((root / "val" / "boxes.json").read_text())["00003"]
    np.testing.assert_allclose(boxes, face["boxes"][0].numpy(), atol=0.01)


def test_write_ffhqr_is_idempotent_and_redoes_interrupted_writes(tmp_path):
    args = dict(sizes={"train": 2, "val": 1, "test": 1}, size=32, seed=0)
    root = write_ffhqr(tmp_path / "d", **args)
    files = sorted(root.rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert write_ffhqr(tmp_path / "d", batch_size=1, **args) == root
    assert {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*.png"))} == stamps  # nothing rewritten

    (root / "DONE.json").unlink()  # as if the first write had been interrupted
    (root / "train" / "source" / "stale.png").write_bytes(b"junk")
    write_ffhqr(tmp_path / "d", **args)
    assert not (root / "train" / "source" / "stale.png").exists()
    assert all(p.stat().st_mtime_ns >= stamps[p] for p in files) and (root / "DONE.json").exists()

    write_ffhqr(tmp_path / "d", **{**args, "seed": 5})  # other arguments: rewritten with the new faces
    assert json.loads((root / "DONE.json").read_text())["seed"] == 5
    new = read_rgb_uint8(root / "train" / "target" / "00000.png")
    assert np.array_equal(new, to_uint8(render_faces([0], 32, seed=5)["image"][0]).permute(1, 2, 0).numpy())


def test_write_faces(tmp_path):
    root = write_faces(tmp_path / "hq", n=3, size=32, seed=2)
    assert _names(root) == ["00000", "00001", "00002"]
    assert sorted(json.loads((root / "boxes.json").read_text())) == _names(root)
    stamp = (root / "00001.png").stat().st_mtime_ns
    write_faces(tmp_path / "hq", n=3, size=32, seed=2)
    assert (root / "00001.png").stat().st_mtime_ns == stamp
    write_faces(tmp_path / "hq", n=2, size=32, seed=2)
    assert _names(root) == ["00000", "00001"]


def test_cli(tmp_path, capsys):
    main([str(tmp_path / "r"), "--size", "32", "--train", "2", "--val", "1", "--test", "1", "--seed", "3"])
    assert _names(tmp_path / "r" / "test" / "mask") == ["00003"]
    done = json.loads((tmp_path / "r" / "DONE.json").read_text())
    assert done["sizes"] == {"train": 2, "val": 1, "test": 1} and done["seed"] == 3
    main([str(tmp_path / "f"), "--faces-only", "2", "--size", "32"])
    assert _names(tmp_path / "f") == ["00000", "00001"]
    assert str(tmp_path / "f") in capsys.readouterr().out


def test_rendering_shows_its_progress_and_writes_the_same_files_with_a_bar(tmp_path, monkeypatch, caplog):
    args = dict(sizes={"train": 3, "val": 1, "test": 1}, size=32, seed=0, batch_size=2)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        plain = write_ffhqr(tmp_path / "plain", **args)
    assert f"rendering the synthetic retouching set into {plain} (once" in caplog.text
    assert "rendering train: 3 faces\n" in caplog.text and "rendering train: 3 faces in " in caplog.text
    monkeypatch.setattr(console, "on_terminal", lambda: True)  # the Rich bar
    bar = write_ffhqr(tmp_path / "bar", **args)
    files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(bar) for p in bar.rglob("*") if p.is_file()) and len(files) > 10
    assert all((plain / f).read_bytes() == (bar / f).read_bytes() for f in files)
