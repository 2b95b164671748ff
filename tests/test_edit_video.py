"""facezoo-video (src/edit_video.py) on a tiny random StyleGANEX (debug=tiny: a 256 px decoder at narrow
1/16, r = 1; tests only): a synthetic clip with a sound track keeps its frames, size, fps and audio; the
astronaut photo (dlib finds its face) gives a photo changed only around the face; strength 0 is the plain
reconstruction, a direction changes it; batches give what single frames give; bad input is one line."""

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from facezoo.checkpoints import load_model
from facezoo.datamodules.synthetic.clip import render_clip, write_clip
from facezoo.edit_video import edit_video
from facezoo.faces.video import read_frames, video_info
from facezoo.metrics.temporal import frame_change
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import to_float, to_uint8
from helpers import run_modules, tiny_checkpoint

FPS, RATE, SIDE = 12, 22050, 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, data_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("styleganex"), data_dir, "model=styleganex_inversion")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A W direction of the tiny model's width (32) and one of the wrong width; the astronaut; a wall."""
    folder = tmp_path_factory.mktemp("inputs")
    torch.save(torch.randn(32, generator=torch.Generator().manual_seed(1)), folder / "direction.pt")
    np.save(folder / "wide.npy", np.zeros(512, np.float32))
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(folder / "wall.png")
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 frames of the synthetic face at 12 fps with a 440 Hz tone (AAC) as long as the video."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = to_uint8(render_clip(10, SIDE, period=10)).permute(0, 2, 3, 1).numpy()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = SIDE, SIDE, "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="mono")
        t = np.arange(RATE * len(frames) // FPS) / RATE
        tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32),
                                          format="flt", layout="mono")
        tone.sample_rate, tone.pts = RATE, 0
        container.mux(sound.encode(tone))
        container.mux(sound.encode(None))
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory):
    """6 frames of the synthetic face as PNG files (lossless: outputs compared to the model's exactly)."""
    return write_clip(tmp_path_factory.mktemp("frames") / "frames", 6, SIDE, period=6)


def _edit(tmp_path, *overrides):
    return edit_video(compose_config("video", list(overrides), output_dir=tmp_path / "run"))


def _frames(path) -> np.ndarray:
    return np.stack(list(read_frames(path))).astype(int)


def test_a_synthetic_clip_keeps_its_frames_size_fps_and_sound(tmp_path, ckpt, files, clip, capsys):
    out = tmp_path / "edited.mp4"
    report = _edit(tmp_path, f"input={clip}", f"ckpt={ckpt}", f"direction={files / 'direction.pt'}",
                   "box=whole", f"output={out}")
    info = video_info(out)
    assert info.fps == FPS and info.size == (SIDE, SIDE) and info.frame_count == 10 and info.has_audio
    assert report["frames"] == 10 and report["task"] == "edit" and report["crop"] == [0, 0, SIDE, SIDE]
    assert report["frames_per_s"] > 0 and report["frame_change"]["input"] > 0  # the face moves
    assert report["frame_change"]["output"] == pytest.approx(frame_change(_frames(out).astype(np.uint8)),
                                                             abs=0.01)  # (before the video's compression)
    printed = capsys.readouterr().out
    assert f"{clip} -> {out}: 10 frames in " in printed
    assert " frames/s; frame-to-frame change output/input " in printed
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    assert len(sound) / stream.rate == pytest.approx(10 / FPS, abs=0.1) and np.abs(sound).max() > 0.2
    assert np.abs(_frames(out) - _frames(clip)).mean() > 5  # a random model: nothing like the input
    with pytest.raises(ConfigError, match=r"edited.mp4: exists already; .* overwrite=true"):
        _edit(tmp_path, f"input={clip}", f"ckpt={ckpt}", f"direction={files / 'direction.pt'}", "box=whole",
              f"output={out}")


@pytest.mark.parametrize("mode", ["frame", "aligned"])
def test_the_astronaut_photo_gives_a_photo_changed_around_the_face(tmp_path, ckpt, files, mode):
    out = tmp_path / "astronaut.png"
    report = _edit(tmp_path, f"input={files / 'astronaut.png'}", f"ckpt={ckpt}",
                   f"direction={files / 'direction.pt'}", f"mode={mode}", f"output={out}")
    before, after = data.astronaut().astype(int), np.asarray(Image.open(out)).astype(int)
    assert after.shape == before.shape and report["frames"] == 1
    ys, xs = np.nonzero(np.abs(after - before).max(axis=2) > 0)
    assert 150 < xs.mean() < 290 and 40 < ys.mean() < 220  # the face: box about (175, 76)-(265, 166)
    assert not (after[320:] != before[320:]).any() and not (after[:, 420:] != before[:, 420:]).any()
    if mode == "frame":  # the official crop: eyes scaled 64 px apart, ±256 px of that around them
        x0, y0, x1, y1 = report["crop"]
        assert x0 < 175 and x1 > 265 and y0 < 76 and y1 > 166 and x1 - x0 < 400 and y1 - y0 < 400
        assert not (after[:, :x0] != before[:, :x0]).any()
    else:
        assert report["faces"] == 1


def test_strength_0_is_the_reconstruction_and_a_direction_changes_it(tmp_path, ckpt, files, frames_folder):
    common = [f"input={frames_folder}", f"ckpt={ckpt}", f"direction={files / 'direction.pt'}", "box=whole"]
    for strength in (0, 10):
        _edit(tmp_path, *common, f"strength={strength}", f"output={tmp_path / f's{strength}'}")
    model = load_model(ckpt)
    x = to_float(torch.from_numpy(_frames(frames_folder)).permute(0, 3, 1, 2))
    face = model.face_of(x[:1]).expand(len(x), -1, -1, -1)  # w+ from the first frame, for every frame
    with torch.no_grad():
        plain, _ = model.generate(x, face, randomize_noise=False, zero_noise=True)
    plain = to_uint8(plain).permute(0, 2, 3, 1).int().numpy()
    assert np.abs(_frames(tmp_path / "s0") - plain).max() <= 1
    edited = np.abs(_frames(tmp_path / "s10") - plain)
    assert edited.mean() > 2 and (edited > 0).mean() > 0.5  # (a random decoder: outputs near mid-grey)


def test_batches_give_what_single_frames_give(tmp_path, ckpt, files, frames_folder):
    common = [f"input={frames_folder}", f"ckpt={ckpt}", f"direction={files / 'direction.pt'}",
              "box=[8,4,56,60]"]
    for batch in (1, 4):
        report = _edit(tmp_path, *common, f"batch_size={batch}", f"output={tmp_path / f'b{batch}'}")
    one, four = _frames(tmp_path / "b1"), _frames(tmp_path / "b4")
    assert report["frames"] == len(one) == len(four) == 6 and report["crop"] == [8, 4, 56, 60]
    assert np.abs(one - four).max() <= 1
    source = _frames(frames_folder)
    assert (four[:, :4] == source[:, :4]).all() and (four[:, :, 56:] == source[:, :, 56:]).all()  # outside


def test_an_edit_checkpoint_brings_its_own_vector(tmp_path, ckpt, files, frames_folder, monkeypatch):
    import facezoo.edit_video as module

    def edit_model(path, device):  # what the importer gives for styleganex_edit_*.pt: task edit, editing_w
        model = load_model(path, device)
        model.task = "edit"
        model.register_buffer("editing_w", torch.randn(1, model.decoder.n_latent, model.decoder.style_dim))
        return model

    monkeypatch.setattr(module, "load_styleganex", edit_model)
    common = [f"input={frames_folder}", f"ckpt={ckpt}", "box=whole", "strength=2"]
    own = _edit(tmp_path, *common, f"output={tmp_path / 'own'}")
    given = _edit(tmp_path, *common, f"direction={files / 'direction.pt'}", f"output={tmp_path / 'given'}")
    assert own["task"] == given["task"] == "edit"
    assert np.abs(_frames(tmp_path / "own") - _frames(tmp_path / "given")).mean() > 1  # direction= overrides
    with pytest.raises(ConfigError, match="a StyleGANEX edit model; task=toonify needs a toonify checkpoint"):
        _edit(tmp_path, *common, "task=toonify", f"output={tmp_path / 'toon'}")


def test_bad_input_is_one_line(tmp_path, ckpt, files, clip):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    cases = {
        r"wall.png: no face found on the first frame \(dlib\); give box=whole": (DataError, [
            f"input={files / 'wall.png'}", f"direction={files / 'direction.pt'}",
            f"output={tmp_path / 'o.png'}", "detector.recall=false"]),
        r"wide.npy: expected .* \(32,\), \(1, 32\), \(14, 32\) or \(1, 14, 32\)": (DataError, [
            f"input={clip}", f"direction={files / 'wide.npy'}", "box=whole"]),
        r"broken.mp4: not a readable video": (DataError, [f"input={broken}", "box=whole"]),
        r"stores no editing vector; give direction=FILE": (ConfigError, [f"input={clip}", "box=whole"]),
        r"a StyleGANEX inversion model; task=toonify needs a toonify checkpoint": (ConfigError, [
            f"input={clip}", "task=toonify", "box=whole"]),
        r"box=\[0, 0, 99, 10\]: expected 0 <= x0 < x1 <= 64": (ConfigError, [
            f"input={clip}", f"direction={files / 'direction.pt'}", "box=[0,0,99,10]"]),
        r"output=.*clip.mp4: it would overwrite the input": (ConfigError, [
            f"input={clip}", f"direction={files / 'direction.pt'}", "box=whole", f"output={clip}"]),
    }
    for message, (error, args) in cases.items():
        with pytest.raises(error, match=message):
            output = [] if any(a.startswith("output=") for a in args) else [f"output={tmp_path / 'o.mp4'}"]
            _edit(tmp_path, f"ckpt={ckpt}", *output, *args)
    assert not list(tmp_path.glob("o.*"))


def test_the_command_line(tmp_path, ckpt, files, data_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    baseline = tiny_checkpoint(tmp_path, data_dir)  # the tiny config's default model, not a StyleGANEX
    photo = [f"input={files / 'wall.png'}", f"direction={files / 'direction.pt'}", "box=whole",
             f"hydra.run.dir={tmp_path / 'run'}"]
    results = run_modules({
        "ok": ("facezoo.edit_video", [*photo, f"ckpt={ckpt}"], tmp_path),
        "other": ("facezoo.edit_video", [*photo, f"ckpt={baseline}", "output=o.png"], tmp_path),
    })
    assert results["ok"].returncode == 0, results["ok"].stderr[-2000:]
    assert Image.open(tmp_path / "run" / "wall_edit.png").size == (128, 96)  # the run folder, <stem>_<task>
    assert results["other"].returncode == 2
    assert results["other"].stderr.strip().splitlines()[-1] == (
        f"facezoo: error: ckpt={baseline}: a facezoo.models.baseline.Pix2PixBaseline checkpoint; expected a "
        "StyleGANEX one (a model=styleganex_* run or an official styleganex_*.pt)")
