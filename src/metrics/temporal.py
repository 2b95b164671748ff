"""Temporal stability of a video: how much it changes from one frame to the next (issue 16's measure of
flicker in video editing, StyleGANEX's temporal loss).

`frame_change(frames)`: the mean absolute difference between consecutive frames, over every pixel, the
three RGB channels and every pair (t, t + 1), in units of the [0, 1] intensity range: 0 for a still clip,
1/255 ≈ 0.0039 when every value moves by one 8-bit level. Frames are (T, 3, H, W) floats in [-1, 1] (the
models' convention; the difference is halved into [0, 1]) or (T, H, W, 3) uint8 arrays / tensors as read
(`faces.video.read_frames`; divided by 255). Colour space: the frames' own RGB, no gamma or luma weighting.

`FrameChange` accumulates the same number over a stream of frames (chunks of any length, the pair across
two chunks counted): a whole video is measured without holding it, e.g. `FrameChange().update_video(path)`.

`stability_ratio(output, input)`: frame_change(output) / frame_change(input). An edited video that follows
the input's motion and adds no flicker has a ratio near 1; flicker raises it. Outputs of another size than
the input (StyleGANEX's ×4) are compared as they are: the measure is a mean, not a sum, so the size changes
it only by the resampling's smoothing.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


def _unit_range(frames) -> torch.Tensor:
    """(T, 3, H, W) float in [0, 1] from float [-1, 1] (T, 3, H, W) or uint8 (T, H, W, 3) frames."""
    frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if frames.dtype == torch.uint8:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frame_change: expected uint8 frames (T, H, W, 3), got {tuple(frames.shape)}")
        return frames.permute(0, 3, 1, 2).float() / 255
    if frames.ndim != 4 or frames.shape[1] != 3 or not frames.is_floating_point():
        raise ValueError(
            f"frame_change: expected float frames (T, 3, H, W) in [-1, 1], got {frames.dtype} "
            f"{tuple(frames.shape)}"
        )
    return (frames.float() + 1) / 2


class FrameChange:
    """The mean absolute frame-to-frame difference of a stream of frames (see the module docstring)."""

    def __init__(self) -> None:
        self.total, self.pairs, self.count = 0.0, 0, 0
        self._last: torch.Tensor | None = None

    def update(self, frames) -> None:
        """Add the next frames of the stream: (T, 3, H, W) in [-1, 1] or (T, H, W, 3) uint8, T ≥ 1."""
        frames = _unit_range(frames)
        if self._last is not None:
            if frames.shape[1:] != self._last.shape[1:]:
                raise ValueError(f"frame_change: frames of {tuple(frames.shape[1:])} after "
                                 f"{tuple(self._last.shape[1:])}: all frames of a clip have one size")
            frames = torch.cat([self._last.to(frames.device), frames])
        if len(frames) > 1:
            diff = (frames[1:] - frames[:-1]).abs()
            self.total += float(diff.double().mean(dim=(1, 2, 3)).sum())
            self.pairs += len(frames) - 1
        self.count += len(frames) - (self._last is not None)
        self._last = frames[-1:]

    def update_video(self, path: str | Path, chunk: int = 16) -> "FrameChange":
        """Add every frame of a video file or folder of frames (read `chunk` at a time)."""
        from facezoo.faces.video import read_frames  # PyAV only when a video is read

        frames: list[np.ndarray] = []
        for frame in read_frames(path):
            frames.append(frame)
            if len(frames) == chunk:
                self.update(np.stack(frames))
                frames = []
        if frames:
            self.update(np.stack(frames))
        return self

    def compute(self) -> float:
        """The mean over the pairs seen so far; a stream of fewer than two frames has none: an error."""
        if not self.pairs:
            raise ValueError(f"frame_change: {self.count} frame(s); it needs at least two")
        return self.total / self.pairs


def frame_change(frames: torch.Tensor | np.ndarray | Iterable) -> float:
    """The mean absolute frame-to-frame difference of a clip, in [0, 1] units (see the module docstring)."""
    meter = FrameChange()
    meter.update(frames)
    return meter.compute()


def stability_ratio(output, input) -> float:
    """frame_change(output) / frame_change(input): 1 follows the input's change, above 1 adds flicker."""
    reference = frame_change(input)
    if reference == 0:
        raise ValueError("stability_ratio: the input clip does not change (frame_change 0): use a moving "
                         "clip")
    return frame_change(output) / reference
