"""facezoo-restore end to end (src/restore.py) on a real photo (skimage's astronaut, public domain) with a
tiny random-weight model saved as a facezoo checkpoint: every face restored and pasted back (the rest of the
photo untouched), photos without a face copied through, bad files reported and skipped (exit 1), finished
outputs skipped on a re-run, videos keep their frames and fps (audio: tests/faces/test_video.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from PIL import Image
from skimage import data

from facezoo.checkpoints import config_entries
from facezoo.restore import restore
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, run_modules, tiny_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory, data_dir):
    """A tiny baseline (64 px, FFHQ alignment) with random weights, as a facezoo checkpoint."""
    folder = tmp_path_factory.mktemp("weights")
    return tiny_checkpoint(folder, data_dir)


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(folder / "wall.png")  # no face
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _restore(tmp_path, *overrides):
    return restore(compose_config("restore", list(overrides), output_dir=tmp_path / "run"))


def test_a_folder_of_photos_is_restored_face_by_face(tmp_path, photos, weights, capsys):
    out = tmp_path / "out"
    report = _restore(tmp_path, f"input={photos}", f"output={out}", f"weights={weights}")
    assert report["faces_per_s"] > 0 and report["photos_without_faces"] == 1
    stages = report["stages"]  # seconds
    assert set(stages) == {"detect", "align", "restore", "paste"} and stages["restore"] > 0
    printed = capsys.readouterr().out
    assert "restored 2 files (1 faces)" in printed and "1 photos without a face (copied)" in printed
    assert " faces/s, " in printed
    files = {Path(k).name: v for k, v in report["files"].items()}
    assert files["astronaut.png"]["faces"] == 1 and files["wall.png"]["faces"] == 0
    assert report["failed"] == 1 and "broken.jpg: not a readable image" in files["broken.jpg"]["error"]
    before, after = data.astronaut(), np.asarray(Image.open(out / "astronaut.png"))
    changed = np.abs(after.astype(int) - before).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert after.shape == before.shape and changed.any()
    assert 120 < xs.mean() < 300 and 40 < ys.mean() < 220  # the face (box about (175, 76)-(265, 166)), only
    assert not changed[300:].any() and not changed[:, 350:].any()  # the rest of the photo is as it was
    assert (out / "wall.png").read_bytes() == (photos / "wall.png").read_bytes()  # no face: copied through
    assert json.loads((out / "restore.json").read_text())["faces"] == 1
    assert not list(photos.glob("*.json"))  # nothing written next to the inputs

    again = _restore(tmp_path, f"input={photos}", f"output={out}", f"weights={weights}")
    assert again["done_before"] == 2 and set(again["files"]) == {str(photos / "broken.jpg")}


def test_the_command_line_exits_1_when_a_file_failed_and_2_on_bad_input(tmp_path, photos, weights):
    args = [f"input={photos}", f"weights={weights}"]
    results = run_modules({  # both commands in one Python process
        "partly": ("facezoo.restore", [*args, f"output={tmp_path / 'out'}"], tmp_path),
        "inside": ("facezoo.restore", [*args, f"output={photos / 'out'}"], tmp_path),
    })
    partly, inside = results["partly"], results["inside"]
    assert partly.returncode == 1 and "Traceback" not in partly.stderr
    assert partly.stderr.strip().splitlines()[-1].startswith("facezoo: error: 1 files could not be restored")
    assert (tmp_path / "out" / "astronaut.png").is_file()
    assert inside.returncode == 2 and "inside the input folder" in inside.stderr.strip().splitlines()[-1]


def test_a_video_keeps_its_frames_and_fps(tmp_path, weights):
    from facezoo.faces.video import VideoWriter, video_info

    clip = tmp_path / "clip.mp4"
    frame = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256 px: the face is about 45 px
    with VideoWriter(clip, 10) as writer:
        for shift in range(4):
            writer.write(np.roll(frame, shift, axis=1))
    out = tmp_path / "restored.mp4"
    report = _restore(
        tmp_path, f"input={clip}", f"output={out}", f"weights={weights}", "detector.min_face=20"
    )
    entry = report["files"][str(clip)]
    assert entry["frames"] == 4 and entry["faces"] == 4
    info = video_info(out)
    assert info.fps == 10 and info.frame_count == 4 and info.size == (256, 256)
    assert entry["jitter"]["smoothed"] <= entry["jitter"]["raw"] + 1e-9


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_restores_close_to_fp32(tmp_path, photos, weights, precision):
    photo = photos / "astronaut.png"
    fp32, half = tmp_path / "fp32.png", tmp_path / f"{precision}.png"
    _restore(tmp_path, f"input={photo}", f"output={fp32}", f"weights={weights}")
    _restore(tmp_path, f"input={photo}", f"output={half}", f"weights={weights}", f"precision={precision}")
    a, b = (np.asarray(Image.open(f), dtype=float) for f in (fp32, half))
    changed = np.abs(a - data.astronaut()).max(axis=2) > 0
    assert 0 < np.abs(a - b).mean() and np.abs(a - b)[changed].mean() < 2  # grey levels, in the face only


def test_auto_precision_is_half_on_a_gpu_and_fp32_on_a_cpu(monkeypatch):
    from facezoo.restore import _precision

    assert _precision("auto", "cpu") == "fp32" and _precision("bf16", "cpu") == "bf16"
    for supported, half in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert _precision("auto", "cuda:0") == half


def test_a_video_without_faces_is_searched_again_once_a_second():
    from facezoo.restore import _RetryPolicy

    policy, retried = _RetryPolicy(fps=10), []
    for index in range(25):
        retry = policy.due(index)
        retried += [index] * retry
        policy.seen(index, retry, found=False)
    assert retried == [0, 10, 20]
    policy, retried = _RetryPolicy(fps=10), []
    for index, found in enumerate([True, True, False, False, True]):  # a face lost at frame 2
        retry = policy.due(index)
        retried += [index] * retry
        policy.seen(index, retry, found)
    assert retried == [0, 1, 2]  # not 3: searched again at 2


def test_one_photo_to_another_format_with_its_crops(tmp_path, photos, weights):
    out = tmp_path / "astronaut.jpg"
    report = _restore(tmp_path, f"input={photos / 'astronaut.png'}", f"output={out}", f"weights={weights}",
                      "save_crops=true")
    assert report["faces"] == 1 and Image.open(out).format == "JPEG" and Image.open(out).size == (512, 512)
    crops = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert crops == ["astronaut_00_compare.png", "astronaut_00_input.png", "astronaut_00_restored.png"]
    assert Image.open(tmp_path / "crops" / "astronaut_00_input.png").size == (64, 64)  # the trained size
    assert json.loads((tmp_path / "astronaut.json").read_text())["faces"] == 1


def test_an_official_release_file_restores_with_its_own_alignment_and_size(tmp_path, photos):
    """A tiny GPEN-BFR release (a bare generator state_dict, official names): recognised from its keys and
    shapes, aligned with the 5-point template at the generator's own size."""
    from facezoo.faces.align import face_template
    from facezoo.faces.detector import DlibDetector
    from facezoo.faces.landmarks import five_points
    from facezoo.models.components.gpen import GPENGenerator

    torch.manual_seed(0)
    release = tmp_path / "GPEN-BFR-64.pth"
    generator = GPENGenerator(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, narrow=1 / 16)
    torch.save(generator.state_dict(), release)
    out = tmp_path / "out.png"
    report = _restore(tmp_path, f"input={photos / 'astronaut.png'}", f"output={out}", f"weights={release}",
                      "save_crops=true")
    assert report["faces"] == 1 and Image.open(out).size == (512, 512)
    crop = np.asarray(Image.open(tmp_path / "crops" / "out_00_input.png"))
    assert crop.shape == (64, 64, 3)
    # the face in the crop sits where facexlib's template puts it: its eyes found again at the template's eyes
    big = np.asarray(Image.fromarray(crop).resize((512, 512), Image.BICUBIC))
    faces = DlibDetector(recall=False).detect(big)
    assert len(faces) == 1
    eyes = five_points(faces[0].landmarks)[:2]
    assert np.abs(eyes - face_template(512)[:2].numpy()).max() < 20  # px of 512


def test_a_styleganex_super_resolution_checkpoint_restores_a_photo(tmp_path, photos, data_dir):
    """StyleGANEX sr (FFHQ-aligned crops, any size): the crop goes to E at 1/r and the decoder draws it at
    the crop's size; its inversion checkpoints are reconstructions, not restorers: refused by name."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for task in ("sr", "inversion"):
        cfg = compose_config(overrides=[*TINY, f"model=styleganex_{task}", "datamodule=synthetic_restore"],
                             output_dir=folder, data_dir=data_dir)
        with open_dict(cfg):
            del cfg["hydra"]
        torch.manual_seed(0)
        model = instantiate(cfg.model, "model")
        torch.save({"state_dict": model.state_dict(), **config_entries(cfg)}, folder / f"{task}.ckpt")
    out = tmp_path / "out.png"
    report = _restore(tmp_path, f"input={photos / 'astronaut.png'}", f"output={out}",
                      f"weights={folder / 'sr.ckpt'}", "save_crops=true")
    assert report["faces"] == 1 and Image.open(out).size == (512, 512)
    restored = np.asarray(Image.open(tmp_path / "crops" / "out_00_restored.png"))
    assert restored.shape == (64, 64, 3) and restored.std() > 0  # the size its run trained at
    with pytest.raises(ConfigError, match="alignment=None: StyleGANEX is not a face restorer"):
        _restore(tmp_path, f"input={photos / 'astronaut.png'}", f"output={tmp_path / 'inv.png'}",
                 f"weights={folder / 'inversion.ckpt'}")
