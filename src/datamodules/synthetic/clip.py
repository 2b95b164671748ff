"""A synthetic video clip: one rendered face (renderer.py) moving and turning slowly over a still background,
for the temporal-stability figures of facezoo-video (metrics/temporal.py) and its tests.

`render_clip(frames, size, ...)` → (T, 3, size, size) in [-1, 1]; `clip_batches` yields the same frames
`batch` at a time (long clips never all in memory); `write_clip(path, ...)` streams them into a video file
(or a folder of frames) through `faces.video.open_writer`, at an exact fps.

The face (`render_faces([index], size, seed)`) is rendered once and cut out by its parsing map (every label
but background: skin, neck, ears, hair, features; the shoulders are not kept). Frame t moves it about the
frame centre (`geometric.similarity`; warped by kornia, nothing beyond the render): scale `scale`,
rotation `angle`·sin φ degrees and shift (`shift`·sin φ, ½`shift`·sin 2φ) of the half frame, φ = 2π t /
`period`: a slow figure-of-eight with a nod, a smooth periodic path (no jump at t = 0). The background is a
fixed two-colour gradient with soft diagonal waves drawn from `seed`, so that the still parts of a frame have
texture. Everything is batched on `device` (the warp is bilinear, the cut-out's edge soft) and deterministic
in (seed, index): a frame is the same whichever batch it is made in. `shift=0, angle=0` gives a still clip:
every frame identical.
"""

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import torch
from kornia.geometry.transform import warp_affine

from facezoo.datamodules.geometric import similarity
from facezoo.datamodules.synthetic.canvas import pixel_grid
from facezoo.datamodules.synthetic.renderer import BACKGROUND, render_faces
from facezoo.utils.image_io import to_uint8

_BACKGROUND_SALT = 0xB6_C11B


def _background(size: int, seed: int, device) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: a gradient between two colours with soft waves, fixed by `seed`."""
    g = torch.Generator().manual_seed(seed ^ _BACKGROUND_SALT)
    colours = (0.15 + 0.7 * torch.rand(2, 3, 1, 1, generator=g)).to(device)
    angle, freq, phase = (torch.rand(3, generator=g) * torch.tensor([2 * math.pi, 6.0, 2 * math.pi])).tolist()
    x, y = pixel_grid(size, size, device)  # the canvas's normalised coordinates, [-1, 1]
    t = ((x * math.cos(angle) + y * math.sin(angle)) * 0.5 + 0.5).clamp(0, 1)
    waves = 0.08 * torch.sin((x + y) * (4.0 + freq) * math.pi + phase)
    image = torch.lerp(colours[0], colours[1], t) + waves
    return image.clamp(0, 1).mul(2).sub(1)[None]


def motion(times: torch.Tensor, size: int, shift: float, angle: float, scale: float,
           period: float) -> torch.Tensor:
    """(T, 2, 3) forward transforms, in pixels of a `size` frame, of the face at frame `times` (T,)."""
    phi = 2 * math.pi * times.double() / period
    offset = torch.stack([shift * phi.sin(), 0.5 * shift * (2 * phi).sin()], dim=1)
    turn = torch.deg2rad(angle * phi.sin())
    frame = similarity(offset, turn, torch.full_like(turn, scale))  # geometric.py's frame: the side spans 2
    pixels = torch.tensor([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]],
                          dtype=frame.dtype, device=frame.device)
    return (pixels @ frame @ torch.linalg.inv(pixels))[:, :2].float()


def clip_batches(frames: int, size: int, index: int = 0, seed: int = 0, shift: float = 0.1,
                 angle: float = 8.0, scale: float = 0.7, period: float = 60.0, batch: int = 16,
                 device=None) -> Iterator[torch.Tensor]:
    """The frames of `render_clip`, (≤ batch, 3, size, size) at a time."""
    if frames < 1 or size < 8 or batch < 1 or not period > 0 or not scale > 0:
        raise ValueError(f"render_clip: frames={frames}, size={size}, batch={batch}, period={period}, "
                         f"scale={scale}: expected frames, batch >= 1, size >= 8, period and scale > 0")
    face = render_faces([index], size, seed=seed, device=device)
    cut = (face["parsing"] != BACKGROUND).float()[:, None]
    layers = torch.cat([face["image"] * cut, cut], dim=1)  # premultiplied: the warp blends colour and cover
    background = _background(size, seed, device)
    for start in range(0, frames, batch):
        times = torch.arange(start, min(start + batch, frames), device=device)
        matrices = motion(times, size, shift, angle, scale, period).to(layers.device)
        moved = warp_affine(layers.expand(len(times), -1, -1, -1), matrices, (size, size), mode="bilinear",
                            padding_mode="zeros", align_corners=True)
        colour, cover = moved[:, :3], moved[:, 3:].clamp(0, 1)
        yield (colour + (1 - cover) * background).clamp(-1, 1)


def render_clip(frames: int, size: int, **options) -> torch.Tensor:
    """(frames, 3, size, size) in [-1, 1]: see the module docstring (options: `clip_batches`')."""
    return torch.cat(list(clip_batches(frames, size, **options)))


def write_clip(path: str | Path, frames: int, size: int, fps: Fraction | int = 25, **options) -> Path:
    """Render a clip straight into a video file (.mp4 .mov .avi .webm) or a folder of PNG frames."""
    from facezoo.faces.video import open_writer  # PyAV only when a clip is written

    with open_writer(path, fps) as writer:
        for chunk in clip_batches(frames, size, **options):
            for frame in to_uint8(chunk).permute(0, 2, 3, 1).cpu().numpy():
                writer.write(frame)
    return Path(path)
