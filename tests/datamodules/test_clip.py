"""datamodules/synthetic/clip.py: the synthetic moving-face clip is deterministic, batch-independent and
written at an exact fps."""

import torch

from facezoo.datamodules.synthetic.clip import clip_batches, render_clip, write_clip
from facezoo.faces.video import read_frames, video_info


def test_a_clip_is_deterministic_and_the_same_in_any_batches():
    clip = render_clip(5, 40, seed=3, period=10)
    assert clip.shape == (5, 3, 40, 40) and clip.min() >= -1 and clip.max() <= 1
    assert torch.equal(clip, render_clip(5, 40, seed=3, period=10, batch=2))
    assert torch.equal(clip, torch.cat(list(clip_batches(5, 40, seed=3, period=10, batch=1))))
    assert not torch.equal(clip, render_clip(5, 40, seed=4, period=10))  # another face and background
    assert not torch.equal(clip[0], clip[1])  # it moves


def test_the_face_moves_over_a_still_background():
    clip = render_clip(4, 64, shift=0.15, angle=0.0, period=8)
    moved = (clip[1:] - clip[:-1]).abs().amax(dim=(0, 1)) > 1e-3  # pixels that change at some frame
    assert moved[28:36, 28:36].any()  # the face, at the centre
    assert not moved[:4, :4].any() and not moved[-4:, -4:].any()  # the background's corners stay
    still = render_clip(3, 32, shift=0.0, angle=0.0)
    assert torch.equal(still[0], still[2])


def test_write_clip_gives_a_video_at_its_fps(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", 6, 32, fps=12, period=12)
    info = video_info(path)
    assert info.fps == 12 and info.size == (32, 32) and not info.has_audio
    assert len(list(read_frames(path))) == 6
