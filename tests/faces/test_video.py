"""Video and frame-folder input/output (src/faces/video.py) on a 12-frame 64x48 video with a sine-tone AAC
track (made with PyAV directly): frames, fps and audio survive a rewrite, a bad file is one DataError line,
an interrupted write leaves nothing behind."""

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from facezoo.faces.video import (
    FOLDER_FPS,
    FrameFolderWriter,
    VideoWriter,
    open_writer,
    read_frames,
    video_info,
)
from facezoo.utils.errors import ConfigError, DataError

FPS = Fraction(24)
FRAMES = 12
RATE = 22050  # audio samples per second


def _frames(count=FRAMES, height=48, width=64) -> list[np.ndarray]:
    """Smooth colour ramps and a bar moving 5 px a frame: easy for a lossy codec, different in every frame."""
    y, x = np.mgrid[:height, :width]
    frames = []
    for i in range(count):
        frame = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], -1).astype(np.uint8)
        frame[:, 5 * i : 5 * i + 6] = 255
        frames.append(frame)
    return frames


def _make_video(path, frames, audio=True, rotation=None, faststart=False):
    """Encode `frames` at 24 fps (libx264) with a 440 Hz tone as long as the video (AAC, mono)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        if audio:
            sound = container.add_stream("aac", rate=RATE, layout="mono")
            t = np.arange(int(RATE * len(frames) / FPS)) / RATE
            wave = (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
            tone = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
            tone.sample_rate, tone.pts = RATE, 0
            container.mux(sound.encode(tone))
            container.mux(sound.encode(None))
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
    return path


def _audio(path) -> tuple[str, float, float]:
    """The audio codec, seconds of decoded sound and its peak amplitude."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])
        return stream.codec_context.name, len(samples) / stream.rate, float(np.abs(samples).max())


def _mean_abs_diff(a, b) -> float:
    return float(np.mean([np.abs(x.astype(np.int16) - y).mean() for x, y in zip(a, b, strict=True)]))


@pytest.fixture
def source(tmp_path):
    return _make_video(tmp_path / "in.mp4", _frames())


def test_a_video_is_read_with_its_fps_size_count_and_audio(source):
    info = video_info(source)
    assert info.fps == FPS and info.size == (64, 48) and info.frame_count == FRAMES and info.has_audio
    frames = list(read_frames(source))
    assert len(frames) == FRAMES and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert _mean_abs_diff(frames, _frames()) < 3


@pytest.mark.parametrize(
    "suffix, audio_codec",
    [(".mp4", "aac"), (".mov", "aac"), (".avi", "aac"), (".webm", "opus")],  # webm takes no AAC: re-encoded
)
def test_a_rewritten_video_keeps_fps_frames_and_audio(source, tmp_path, suffix, audio_codec):
    out = tmp_path / f"out{suffix}"
    with open_writer(out, video_info(source).fps, audio_from=source) as writer:
        assert isinstance(writer, VideoWriter)
        for frame in read_frames(source):
            writer.write(frame)
    info = video_info(out)
    assert info.fps == FPS and info.size == (64, 48) and info.has_audio
    frames = list(read_frames(out))
    assert len(frames) == FRAMES and _mean_abs_diff(frames, list(read_frames(source))) < 3
    codec, seconds, peak = _audio(out)
    _, source_seconds, _ = _audio(source)
    assert codec == audio_codec
    assert seconds == pytest.approx(source_seconds, abs=0.05) and peak == pytest.approx(0.3, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", out.name]  # no temporary left


def test_an_opus_track_is_re_encoded_to_aac_for_mov(source, tmp_path):
    webm = tmp_path / "opus.webm"
    with VideoWriter(webm, FPS, audio_from=source) as writer:
        for frame in read_frames(source):
            writer.write(frame)
    with VideoWriter(tmp_path / "out.mov", FPS, audio_from=webm) as writer:
        for frame in read_frames(webm):
            writer.write(frame)
    codec, seconds, _ = _audio(tmp_path / "out.mov")
    assert codec == "aac" and seconds == pytest.approx(FRAMES / FPS, abs=0.05)


def test_odd_sizes_are_padded_to_even(tmp_path):
    frames = _frames(height=47, width=63)
    with VideoWriter(tmp_path / "odd.mp4", FPS) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.size == (64, 48) and video_info(tmp_path / "odd.mp4").size == (64, 48)
    back = [frame[:47, :63] for frame in read_frames(tmp_path / "odd.mp4")]
    assert _mean_abs_diff(back, frames) < 3


def test_a_rotated_phone_video_is_read_upright(tmp_path):
    """A display matrix of 90 degrees (counter-clockwise): frames come turned, as a player shows them."""
    frames = _frames()
    frames[0][:8, :8] = (255, 0, 0)  # a red top-left corner ends up bottom-left
    rotated = _make_video(tmp_path / "phone.mp4", frames, audio=False, rotation=90)
    assert video_info(rotated).size == (48, 64)
    first = next(read_frames(rotated))
    assert first.shape == (64, 48, 3)
    assert first[-4:, :4, 0].min() > 200 and first[-4:, :4, 1].max() < 60


def test_a_folder_of_frames_becomes_a_video(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(_frames(5)):
        Image.fromarray(frame).save(folder / f"f{i:02d}.png")
    info = video_info(folder)
    assert info.fps == FOLDER_FPS and info.size == (64, 48) and info.frame_count == 5 and not info.has_audio
    with open_writer(tmp_path / "out.mp4", info.fps) as writer:
        for frame in read_frames(folder):
            writer.write(frame)
    out = video_info(tmp_path / "out.mp4")
    assert out.fps == FOLDER_FPS and out.frame_count == 5 and not out.has_audio
    assert _mean_abs_diff(list(read_frames(tmp_path / "out.mp4")), _frames(5)) < 3


def test_a_video_becomes_a_folder_of_frames(source, tmp_path):
    with open_writer(tmp_path / "frames", FPS, audio_from=source) as writer:
        assert isinstance(writer, FrameFolderWriter)
        for frame in read_frames(source):
            writer.write(frame)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{i:06d}.png" for i in range(FRAMES)]
    pairs = zip(read_frames(tmp_path / "frames"), read_frames(source), strict=True)
    assert all((a == b).all() for a, b in pairs)


def test_a_shorter_rewrite_removes_the_old_frames_beyond_its_end(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for count in (5, 3):
        with open_writer(folder, FPS) as writer:
            for frame in _frames(count):
                writer.write(frame)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["000000.png", "000001.png", "000002.png", "notes.txt"]


def test_frames_of_different_sizes_in_a_folder_are_refused(tmp_path):
    Image.fromarray(_frames(1)[0]).save(tmp_path / "a.png")
    Image.fromarray(_frames(1, height=32)[0]).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="b.png: size 64x32 differs"):
        list(read_frames(tmp_path))


@pytest.mark.parametrize("faststart", [False, True])  # index at the end (lost) or at the start (kept)
def test_a_truncated_video_is_one_data_error_line(tmp_path, faststart):
    whole = _make_video(tmp_path / "whole.mp4", _frames(), faststart=faststart).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError) as caught:
        for _ in read_frames(cut):
            pass
    message = str(caught.value)
    assert message.startswith(f"{cut}: ") and "\n" not in message
    assert ("truncated" in message) if faststart else ("not a readable video" in message)


def test_an_interrupted_write_leaves_no_file_and_no_temporary(source, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous video")
    with pytest.raises(RuntimeError, match="restore failed"):
        with VideoWriter(out, FPS, audio_from=source) as writer:
            for i, frame in enumerate(read_frames(source)):
                writer.write(frame)
                if i == 5:
                    raise RuntimeError("restore failed")
    assert out.read_bytes() == b"the previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]
    out.unlink()
    with pytest.raises(RuntimeError), VideoWriter(out, FPS) as writer:
        writer.write(_frames(1)[0])
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_unknown_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"out\.mkv: expected a video file name"):
        open_writer(tmp_path / "out.mkv", FPS)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt: expected a video"):
        video_info(tmp_path / "notes.txt")
