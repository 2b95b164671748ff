"""metrics/temporal.py: the mean frame-to-frame change of a clip, in [0, 1] units, whole or streamed."""

import numpy as np
import pytest
import torch

from facezoo.datamodules.synthetic.clip import render_clip
from facezoo.metrics.temporal import FrameChange, frame_change, stability_ratio
from facezoo.utils.image_io import to_uint8


def test_a_still_clip_does_not_change_and_motion_does():
    still = render_clip(6, 48, shift=0.0, angle=0.0)
    assert frame_change(still) == 0.0
    slow, fast = (render_clip(6, 48, shift=s, angle=a, period=40) for s, a in ((0.05, 3.0), (0.2, 12.0)))
    assert 0 < frame_change(slow) < frame_change(fast)


def test_the_units_are_the_unit_range_for_floats_and_uint8():
    frames = torch.full((3, 3, 4, 5), -1.0)
    frames[1] = 1.0  # black, white, black: every value moves by the whole range twice
    assert frame_change(frames) == pytest.approx(1.0)
    frames = torch.zeros(2, 3, 4, 4) - 1
    frames[1, 0] += 2 / 255  # one channel moves by one 8-bit level
    assert frame_change(frames) == pytest.approx(1 / 255 / 3)
    clip = render_clip(4, 32, period=8)
    as_read = to_uint8(clip).permute(0, 2, 3, 1).numpy()  # (T, H, W, 3) uint8, as read_frames gives them
    assert frame_change(as_read) == pytest.approx(frame_change(clip), abs=2e-3)


def test_a_stream_in_chunks_counts_the_pairs_across_chunks():
    clip = render_clip(7, 32, period=10)
    meter = FrameChange()
    for chunk in (clip[:1], clip[1:4], clip[4:]):
        meter.update(chunk)
    assert meter.pairs == 6 and meter.compute() == pytest.approx(frame_change(clip), rel=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        frame_change(clip[:1])
    with pytest.raises(ValueError, match="one size"):
        meter.update(clip[:, :, :16])


def test_stability_ratio_is_one_for_a_faithful_copy_and_grows_with_flicker():
    clip = render_clip(8, 32, period=16)
    assert stability_ratio(clip, clip) == pytest.approx(1.0)
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.05, clip.shape).astype(np.float32))
    assert stability_ratio((clip + noise).clamp(-1, 1), clip) > 1.5
    with pytest.raises(ValueError, match="does not change"):
        stability_ratio(clip, clip[:1].expand(3, -1, -1, -1))
