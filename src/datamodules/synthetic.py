"""Procedural face data: a cartoonish frontal face renderer, a blemish synthesiser and folder writers.

Everything is deterministic in (seed, index): each sample draws its parameters from its own `torch.Generator`,
and all per-pixel work is batched elementwise over samples, so a face is the same whichever batch it is
rendered in. Geometry lives in normalised coordinates (x right, y down, both in [-1, 1]), so any image size
shows the same face. Faces are aligned like FFHQ crops: eyes near 40% height and 35% / 65% width.

`write_ffhqr` writes the FFHQR layout (raw `source`, retouched `target`, soft `mask`, `boxes.json`) and
`write_faces` a folder of clean faces for restoration; both finish with a `DONE.json`, which makes a second
call with the same arguments a no-op and lets an interrupted write be detected and redone.
CLI: `python -m facezoo.datamodules.synthetic OUT [--size 256] [--train 200 --val 20 --test 20] [--seed 0]
[--faces-only N]`.
"""

import argparse
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.utils.image_io import write_image

PARSING_LABELS = ("background", "skin", "brows", "eyes", "nose", "lips", "hair")  # index = label id
COMPONENTS = ("left_eye", "right_eye", "nose", "mouth")  # left_eye = the eye with the smaller x (image left)
BACKGROUND, SKIN, BROWS, EYES, NOSE, LIPS, HAIR = range(len(PARSING_LABELS))

_FORMAT_VERSION = 2  # bump when the rendered pixels change, so old folders are rewritten
_RENDER_SALT, _BLEMISH_SALT = 0x5EED_FACE, 0xB1E_3157
_N_DRAWS = 96  # uniforms per face; new parameters take unused columns so old ones keep their values
_DEFAULT_SPLITS = MappingProxyType({"train": 200, "val": 20, "test": 20})

_SKIN_TONES = ((0.99, 0.86, 0.76), (0.94, 0.75, 0.62), (0.82, 0.60, 0.45), (0.62, 0.42, 0.29),
               (0.40, 0.26, 0.18))
_HAIR_COLOURS = ((0.07, 0.05, 0.045), (0.22, 0.13, 0.07), (0.42, 0.27, 0.15), (0.80, 0.64, 0.38),
                 (0.55, 0.22, 0.08), (0.52, 0.50, 0.48), (0.86, 0.84, 0.80))
_IRIS_COLOURS = ((0.28, 0.16, 0.08), (0.42, 0.26, 0.12), (0.42, 0.38, 0.16), (0.24, 0.42, 0.26),
                 (0.28, 0.48, 0.72), (0.45, 0.53, 0.58))


# ----------------------------------------------------------------------------------------------- sampling
def _as_indices(indices) -> Tensor:
    idx = torch.as_tensor(list(indices) if not isinstance(indices, Tensor) else indices, dtype=torch.long)
    if idx.dim() != 1:
        raise ValueError(f"indices must be a 1-D sequence of ints, got shape {tuple(idx.shape)}")
    return idx.cpu()


def _generator(seed: int, index: int, salt: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, index, salt), well mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, int(index), salt])
    return torch.Generator().manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1))


def _uniforms(indices: Tensor, seed: int, salt: int, n: int) -> Tensor:
    """(B, n) uniforms in [0, 1); row b comes from sample b's own generator (the only per-sample loop)."""
    rows = [torch.rand(n, generator=_generator(seed, int(i), salt)) for i in indices]
    return torch.stack(rows) if rows else torch.zeros(0, n)


class _Draw:
    """Hands out the columns of a (B, N) uniform table in a fixed order, mapped to ranges."""

    def __init__(self, u: Tensor) -> None:
        self.u, self.col = u, 0

    def raw(self) -> Tensor:
        if self.col >= self.u.shape[1]:
            raise RuntimeError("synthetic: more parameter draws than reserved columns")
        self.col += 1
        return self.u[:, self.col - 1]

    def __call__(self, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * self.raw()

    def pick(self, palette, jitter: float = 0.0) -> Tensor:
        """A palette row per sample (B, 3), scaled by a random factor in [1 - jitter, 1 + jitter]."""
        table = torch.tensor(palette, dtype=torch.float32)
        choice = table[(self.raw() * len(table)).long().clamp(max=len(table) - 1)]
        return (choice * self(1 - jitter, 1 + jitter)[:, None]).clamp(0, 1)

    def blend(self, palette) -> Tensor:
        """A colour on the piecewise-linear path through the palette rows (B, 3)."""
        table = torch.tensor(palette, dtype=torch.float32)
        t = self.raw() * (len(table) - 1)
        i = t.floor().long().clamp(max=len(table) - 2)
        return torch.lerp(table[i], table[i + 1], (t - i)[:, None])

    def colour(self, lo: float, hi: float) -> Tensor:
        return torch.stack([self(lo, hi) for _ in range(3)], dim=1)


def _sample_params(indices: Tensor, seed: int) -> dict[str, Tensor]:
    """Per-face parameters, (B,) scalars and (B, 3) colours, in normalised coordinates."""
    d, p = _Draw(_uniforms(indices, seed, _RENDER_SALT, _N_DRAWS)), {}
    # layout: eyes near (0.35, 0.4) / (0.65, 0.4) of the image, with a small jitter
    p["fx"], p["eye_y"], p["eye_dx"] = d(-0.025, 0.025), d(-0.225, -0.175), d(0.275, 0.325)
    p["cy"], p["ay"], p["ax"], p["jaw"] = p["eye_y"] + d(0.12, 0.2), d(0.66, 0.76), d(0.52, 0.61), d(0.0, 0.4)
    tone, brightness = d.blend(_SKIN_TONES), d(0.96, 1.04)[:, None]
    p["skin"] = tone * brightness * torch.stack([d(0.97, 1.03), d(0.97, 1.03), d(0.95, 1.05)], 1)
    p["blush"] = d(0.0, 0.3)
    # eyes and brows
    p["ew"] = d(0.085, 0.115)
    p["eh"] = p["ew"] * d(0.38, 0.52)
    p["iris_r"], p["pupil"], p["gaze"] = d(0.85, 1.05), d(0.32, 0.5), d(-0.2, 0.2)
    p["iris"] = d.pick(_IRIS_COLOURS, 0.15)
    p["lash"] = d(0.006, 0.012)
    p["brow_y"], p["brow_w"], p["brow_t"] = d(0.09, 0.125), d(1.0, 1.35), d(0.011, 0.024)
    p["brow_arch"], p["brow_tilt"] = d(0.0, 0.045), d(-0.02, 0.03)
    # nose and mouth
    p["nose_tip"], p["nose_w"], p["nose_top_w"] = d(0.28, 0.35), d(0.06, 0.11), d(0.025, 0.04)
    p["mouth_y"], p["mouth_w"] = d(0.47, 0.56), d(0.13, 0.2)
    p["lip_up"], p["lip_low"], p["smile"] = d(0.02, 0.038), d(0.028, 0.052), d(-0.012, 0.035)
    p["lips"] = p["skin"] * torch.stack([d(0.78, 0.95), d(0.42, 0.6), d(0.45, 0.62)], 1)
    # hair: colour, volume, length, hairline (fringe depth, temple drop, parting tilt, fringe waves)
    p["hair"] = d.pick(_HAIR_COLOURS, 0.15)
    p["hair_vol"], p["hair_len"], p["hair_top"] = d(0.02, 0.22), d(-0.3, 1.0), d(0.0, 0.12)
    p["fringe"], p["temple"], p["part"] = d(0.04, 0.42), d(0.0, 0.9), d(-0.3, 0.3)
    p["wave_amp"], p["wave_freq"], p["wave_phase"] = d(0.0, 0.03), d(14.0, 30.0), d(0.0, 2 * math.pi)
    p["strand_freq"], p["strand_phase"] = d(40.0, 70.0), d(0.0, 2 * math.pi)
    # scene: clothes, neck, lighting, background
    p["cloth"] = d.colour(0.1, 0.85)
    p["shoulder_w"], p["neck_w"] = d(0.75, 1.0), d(0.2, 0.27)
    light = d(-0.6, 0.6), d(-0.55, 0.1)
    p["light_x"], p["light_y"], p["ambient"] = light[0], light[1], d(0.45, 0.7)
    p["bg0"], p["bg1"], p["bg_angle"] = d.colour(0.15, 0.95), d.colour(0.1, 0.9), d(0.0, 2 * math.pi)
    _fix_hairline(p)
    return p


def _fix_hairline(p: dict[str, Tensor]) -> None:
    """Keep the fringe and temples above the eyes, so both eyes are always visible."""
    limit = p["eye_y"] - p["eh"] - 0.07 - p["wave_amp"]
    reach = p["eye_dx"] + p["ew"]
    h0 = (p["cy"] - p["ay"] + p["fringe"]).minimum(limit - p["part"].abs() * reach)
    room = (limit - h0 - p["part"].abs() * reach).clamp(min=0)
    p["hairline"], p["temple"] = h0, p["temple"].minimum(room / (reach / p["ax"]) ** 2)


# ----------------------------------------------------------------------------------------------- geometry
def _grid(height: int, width: int, device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates: x (1, 1, W) and y (1, H, 1) in [-1, 1]."""
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (2.0 / width) - 1.0
    y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (2.0 / height) - 1.0
    return x.view(1, 1, width), y.view(1, height, 1)


def _sdf_ellipse(x: Tensor, y: Tensor, cx, cy, ax, ay) -> Tensor:
    """Approximate signed distance to an axis-aligned ellipse (negative inside): (r - 1) / |grad r|.
    The x-only and y-only factors stay small, so only a few operations touch every pixel."""
    u, v = (x - cx) / ax, (y - cy) / ay
    r = torch.sqrt(u * u + (v * v + 1e-12))
    grad = torch.sqrt((u / ax) ** 2 + ((v / ay) ** 2 + 1e-12))
    return (r - 1.0) * r / grad


def _gauss(x: Tensor, y: Tensor, cx, cy, sx, sy) -> Tensor:
    """Unnormalised Gaussian bump exp(-(dx/sx)^2 - (dy/sy)^2), as a product of an x and a y factor."""
    return torch.exp(-(((x - cx) / sx) ** 2)) * torch.exp(-(((y - cy) / sy) ** 2))


class _Canvas:
    """RGB image in [0, 1], parsing map and foreground cover, painted back to front with soft alphas.

    `crop` gives a canvas on a fixed window (views, painted in place), so small features only compute
    their own neighbourhood. Windows depend on parameter ranges, never on the batch, so results stay
    batch-independent."""

    def __init__(self, image, parsing, cover, x, y, edge: float) -> None:
        self.image, self.parsing, self.cover, self.x, self.y, self.edge = image, parsing, cover, x, y, edge

    @classmethod
    def blank(cls, background: Tensor, x: Tensor, y: Tensor, edge: float) -> "_Canvas":
        b, _, h, w = background.shape
        parsing = torch.full((b, h, w), BACKGROUND, dtype=torch.long, device=background.device)
        return cls(background, parsing, torch.zeros(b, h, w, device=background.device), x, y, edge)

    def crop(self, x0: float, x1: float, y0: float, y1: float) -> "_Canvas":
        m = 12 * self.edge  # sigmoid tails beyond the window are below 1e-5
        xs, ys = self.x.view(-1), self.y.view(-1)
        j0, j1 = int(torch.searchsorted(xs, x0 - m)), int(torch.searchsorted(xs, x1 + m))
        i0, i1 = int(torch.searchsorted(ys, y0 - m)), int(torch.searchsorted(ys, y1 + m))
        return _Canvas(self.image[..., i0:i1, j0:j1], self.parsing[:, i0:i1, j0:j1],
                       self.cover[:, i0:i1, j0:j1], self.x[..., j0:j1], self.y[:, i0:i1], self.edge)

    def alpha(self, sdf: Tensor) -> Tensor:
        """Soft inside-ness of a signed distance: a sigmoid about one pixel wide."""
        return torch.sigmoid(sdf * (-1.0 / self.edge))

    def paint(self, alpha: Tensor, colour: Tensor, label: int | None = None, cover: bool = False) -> None:
        self.image.lerp_(colour, alpha.unsqueeze(1))
        if label is not None:
            self.parsing.masked_fill_(alpha > 0.5, label)
        if cover:
            torch.maximum(self.cover, alpha, out=self.cover)

    def shade(self, factor: Tensor) -> None:
        """Multiply the image by `factor` (B, H, W)."""
        self.image.mul_(factor.unsqueeze(1))


def _col(c: Tensor) -> Tensor:
    return c.view(-1, 3, 1, 1)


def _const(values, like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------------------------- layers
def _background(p, x, y) -> Tensor:
    t = (x * torch.cos(p["bg_angle"]) + 0.5) * 0.5 + y * (torch.sin(p["bg_angle"]) * 0.5)  # in [0, 1]
    vignette = (1.0 - 0.18 * x * x) - 0.18 * y * y
    return torch.lerp(_col(p["bg0"]), _col(p["bg1"]), t.clamp(0, 1).unsqueeze(1)) * vignette.unsqueeze(1)


def _shoulders(c: _Canvas, p) -> None:
    c = c.crop(-1, 1, 0.68, 1)
    c.paint(c.alpha(_sdf_ellipse(c.x, c.y, p["fx"], 1.28, p["shoulder_w"], 0.55)), _col(p["cloth"]),
            BACKGROUND, cover=True)


def _hair_alpha(c: _Canvas, p) -> Tensor:
    """Outer hair silhouette: a cap around the skull, united with a straight fall of `hair_len`."""
    x, y, vol = c.x, c.y, p["hair_vol"]
    cap = _sdf_ellipse(x, y, p["fx"], p["cy"] - 0.05 - p["hair_top"], p["ax"] + vol, p["ay"] + 0.6 * vol)
    bottom = p["cy"] + p["hair_len"] + 0.03 * torch.sin(x * 23.0 + p["wave_phase"])
    side = (x - p["fx"]).abs() - (p["ax"] + 0.8 * vol)
    fall = torch.maximum(torch.maximum(y - bottom, p["cy"] - y), side)
    return c.alpha(torch.minimum(cap, fall))


def _hair_colour(p, x, y) -> Tensor:
    """Hair colour with strands fanning out from a point above the head (two full-size operations)."""
    fan = (x - p["fx"]) * p["strand_freq"] + p["strand_phase"] * (y - p["cy"] + 1.7)
    strands = 1.0 + 0.035 * torch.sin(fan / (y - p["cy"] + 1.7))
    return _col(p["hair"]) * strands.unsqueeze(1)


def _hairline(p, x) -> Tensor:
    """y of the front hair's lower edge per column: fringe depth, temples, parting tilt and waves."""
    dx = x - p["fx"]
    wave = p["wave_amp"] * torch.sin(dx * p["wave_freq"] + p["wave_phase"]).abs()
    return p["hairline"] + p["temple"] * (dx / p["ax"]) ** 2 + p["part"] * dx + wave


def _neck_and_ears(c: _Canvas, p, skin: Tensor) -> None:
    n = c.crop(-0.32, 0.32, 0.05, 1)
    neck = n.alpha(torch.maximum((n.x - p["fx"]).abs() - p["neck_w"], (p["cy"] + 0.3 * p["ay"]) - n.y))
    shadow = 0.93 - 0.23 * torch.exp(-(((n.y - p["cy"] - p["ay"]) / 0.12) ** 2))
    n.paint(neck, skin * shadow.unsqueeze(1), SKIN, cover=True)
    e = c.crop(-0.72, 0.72, -0.27, 0.07)
    visible = (p["hair_len"] < 0.15).float()
    ears = e.alpha(_sdf_ellipse((e.x - p["fx"]).abs(), e.y, p["ax"] * 0.96, p["eye_y"] + 0.1, 0.065, 0.12))
    e.paint(ears * visible, skin * 0.9, SKIN, cover=True)


def _face(c: _Canvas, p, skin: Tensor) -> None:
    c = c.crop(-0.64, 0.64, -0.87, 0.79)
    x, y = c.x, c.y
    below = ((y - p["cy"]) / p["ay"]).clamp(0, 1)
    ax = p["ax"] * (1.0 - p["jaw"] * below * below)  # the jaw narrows towards the chin
    face = c.alpha(_sdf_ellipse(x, y, p["fx"], p["cy"], ax, p["ay"]))
    c.paint(face, skin, SKIN, cover=True)
    b = c.crop(-0.75, 0.75, -0.1, 0.45)
    blush = _gauss((b.x - p["fx"]).abs(), b.y, p["eye_dx"] * 1.05, p["eye_y"] + 0.26, 0.1, 0.1)
    b.paint(blush * (p["blush"] * (b.parsing == SKIN)), _const((0.92, 0.45, 0.45), x))


def _eyes(c: _Canvas, p) -> None:
    c = c.crop(-0.65, 0.65, -0.47, 0.04)
    x, y, ey, ew, eh = c.x, c.y, p["eye_y"], p["ew"], p["eh"]
    xm = (x - p["fx"]).abs()  # both eyes at once, mirrored about the face centre
    c.shade(1.0 - 0.14 * _gauss(xm, y, p["eye_dx"], ey - 0.5 * eh, ew, 1.4 * eh))  # socket shadow
    eye_sdf = _sdf_ellipse(xm, y, p["eye_dx"], ey, ew, eh)
    eye = c.alpha(eye_sdf)
    c.paint(eye, _const((0.95, 0.93, 0.9), x), EYES)
    ix, iy = p["fx"] + torch.where(x < p["fx"], -1.0, 1.0) * p["eye_dx"] + p["gaze"] * ew, ey + 0.1 * eh
    ir = p["iris_r"] * eh
    r = torch.sqrt((x - ix) ** 2 + (y - iy) ** 2)
    ring = 1.05 - 0.45 * (r / ir).clamp(max=1) ** 3
    c.paint(c.alpha(r - ir) * eye, _col(p["iris"]) * ring.unsqueeze(1))
    c.paint(c.alpha(r - p["pupil"] * ir) * eye, _const((0.03, 0.03, 0.03), x))
    glint = torch.sqrt((x - ix + 0.35 * ir) ** 2 + (y - iy + 0.35 * ir) ** 2) - 0.22 * ir
    c.paint(c.alpha(glint) * eye, _const((0.97, 0.97, 0.97), x))
    upper = torch.sigmoid((ey + 0.25 * eh - y) / c.edge)
    c.paint(c.alpha((eye_sdf + 0.4 * p["lash"]).abs() - p["lash"]) * upper, _const((0.09, 0.06, 0.05), x))
    _brows(c, p)


def _brows(c: _Canvas, p) -> None:
    xm = (c.x - p["fx"]).abs()
    bx, bw = p["eye_dx"] + 0.01, p["brow_w"] * p["ew"]
    t = ((xm - bx) / bw).clamp(-1, 1)  # -1 inner end, +1 outer end
    centre = p["eye_y"] - p["brow_y"] - p["brow_arch"] * (1 - t * t) + p["brow_tilt"] * t
    thick = p["brow_t"] * (1.0 - 0.45 * t.clamp(min=0))
    sdf = torch.maximum((c.y - centre).abs() - thick, (xm - bx).abs() - bw)
    c.paint(c.alpha(sdf) * 0.92, _col(p["hair"] * 0.6 + 0.04), BROWS)


def _nose(c: _Canvas, p) -> None:
    c = c.crop(-0.29, 0.29, -0.21, 0.24)
    x, y = c.x, c.y
    dx, top, tip = x - p["fx"], p["eye_y"] + 0.02, p["eye_y"] + p["nose_tip"]
    xm = dx.abs()
    t = ((y - top) / (tip - top)).clamp(0, 1)
    half = p["nose_top_w"] + (p["nose_w"] - p["nose_top_w"]) * t * t
    body = torch.maximum(xm - half, torch.maximum(top - y, y - tip))
    nose = c.alpha(torch.minimum(body, _sdf_ellipse(xm, y, 0.0, tip - 0.015, p["nose_w"] * 0.85, 0.045)))
    c.parsing.masked_fill_(nose > 0.5, NOSE)  # the nose has no outline: it is drawn by shading only
    side = (dx / half * (1.6 * p["light_x"])).clamp(-1, 1) * t.sqrt()  # darker away from the light
    window = t * torch.sigmoid((tip - 0.03 - y) / 0.015)  # the side line fades out above the nostrils
    ridge = torch.exp(-(((xm - half) / 0.01) ** 2)) * window * (dx * p["light_x"] > 0)
    shading = 1.0 - 0.14 * nose * side - 0.16 * ridge
    shading += 0.12 * _gauss(xm, y, 0.0, tip - 0.03, 0.028, 0.022)  # lit tip
    shading -= 0.1 * _gauss(xm, y, 0.75 * p["nose_w"], tip - 0.01, 0.02, 0.03)  # wings
    shading -= 0.16 * _gauss(xm, y, 0.0, tip + 0.022, 0.9 * p["nose_w"], 0.016)  # shadow below
    c.shade(shading)
    nostril = c.alpha(_sdf_ellipse(xm, y, p["nose_w"] * 0.5, tip + 0.002, 0.026, 0.013))
    c.paint(nostril * 0.9, _col(p["skin"] * 0.25))


def _mouth(c: _Canvas, p) -> None:
    c = c.crop(-0.24, 0.24, 0.16, 0.46)
    x, y = c.x, c.y
    u = ((x - p["fx"]) / p["mouth_w"]).clamp(-1, 1)
    line = p["eye_y"] + p["mouth_y"] - p["smile"] * u * u
    profile = (1 - u * u).clamp(min=0).sqrt()
    bow = 1.0 - 0.3 * torch.exp(-((u / 0.12) ** 2))  # cupid's bow dip in the upper lip
    up, low = p["lip_up"] * profile * bow, p["lip_low"] * profile
    sdf = torch.maximum(torch.maximum(y - (line + low), (line - up) - y), (x - p["fx"]).abs() - p["mouth_w"])
    lips = c.alpha(sdf)
    upper = torch.sigmoid((line - y) / c.edge).unsqueeze(1)
    c.paint(lips, _col(p["lips"]) * (1.0 - 0.18 * upper), LIPS)
    sheen = torch.exp(-((u / 0.4) ** 2)) * torch.exp(-(((y - line - 0.45 * low) / (0.3 * p["lip_low"])) ** 2))
    c.shade(1.0 + 0.18 * sheen * lips)
    seam = c.alpha((y - line).abs() - 0.004) * (profile > 0)
    c.paint(seam * 0.85, _col(p["lips"] * 0.35))


def _lighting(c: _Canvas, p) -> None:
    """Lambert shading of an ellipsoid head, relative to a frontal normal, on the foreground only."""
    u = (c.x - p["fx"]) / (p["ax"] + 0.2)
    v = (c.y - p["cy"] + 0.05) / (p["ay"] + 0.2)
    lx, ly, amb = p["light_x"], p["light_y"], p["ambient"]
    lz = torch.sqrt(1.0 - lx * lx - ly * ly)
    nz = torch.sqrt(((1.0 - u * u) - v * v).clamp(min=0.08))
    lambert = ((u * lx + v * ly) + nz * lz).clamp(min=0)
    norm = amb + (1 - amb) * lz  # a frontal normal keeps its colour
    change = lambert * ((1 - amb) / norm) - (1 - amb) * lz / norm
    c.shade(change.mul_(c.cover).add_(1.0))


# ----------------------------------------------------------------------------------------------- renderer
def _boxes(p: dict[str, Tensor], size: int) -> Tensor:
    """(B, 4, 4) pixel boxes (x1, y1, x2, y2) in COMPONENTS order, from the face parameters."""
    hw, hh = 1.3 * p["ew"], 1.3 * p["ew"] * 0.75
    eyes = [(p["fx"] + s * p["eye_dx"], p["eye_y"], hw, hh) for s in (-1.0, 1.0)]
    top, tip = p["eye_y"] + 0.02, p["eye_y"] + p["nose_tip"]
    nose = (p["fx"], (top + tip + 0.035) / 2, p["nose_w"] + 0.02, (tip + 0.035 - top) / 2)
    my = p["eye_y"] + p["mouth_y"]
    mouth = (p["fx"], my + (p["lip_low"] - p["lip_up"]) / 2, 1.12 * p["mouth_w"],
             (p["lip_low"] + p["lip_up"]) / 2 + 0.03)
    rows = [torch.stack([cx - w, cy - h, cx + w, cy + h], dim=1) for cx, cy, w, h in (*eyes, nose, mouth)]
    return ((torch.stack(rows, dim=1) + 1.0) * (size / 2.0)).clamp(0, size).float()


def _sketch(image: Tensor, parsing: Tensor) -> Tensor:
    """Edge map in [0, 1]: parsing-label boundaries plus soft image gradients (slices only, batch-exact)."""
    lab = F.pad(parsing.unsqueeze(1).float(), (0, 1, 0, 1), mode="replicate")
    centre = lab[..., :-1, :-1]
    boundary = ((lab[..., :-1, 1:] != centre) | (lab[..., 1:, :-1] != centre)).float()
    gray = F.pad(image.mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate")  # in [-1, 1]
    grad_x = (gray[..., 1:-1, 2:] - gray[..., 1:-1, :-2]).abs()
    grad = grad_x + (gray[..., 2:, 1:-1] - gray[..., :-2, 1:-1]).abs()
    return torch.maximum(boundary, (grad * 2.5 - 0.5).clamp(0, 1))


def render_faces(indices, size: int, seed: int = 0, device=None) -> dict[str, Tensor]:
    """Render clean faces for `indices`: image (B,3,S,S) [-1,1], boxes (B,4,4) pixels (x1,y1,x2,y2) in
    COMPONENTS order, parsing (B,S,S) int64 (PARSING_LABELS), sketch (B,1,S,S) [0,1] edges."""
    params = _sample_params(_as_indices(indices), seed)
    p = {k: v.to(device).view(-1, 1, 1) if v.dim() == 1 else v.to(device) for k, v in params.items()}
    x, y = _grid(size, size, device)
    c = _Canvas.blank(_background(p, x, y), x, y, edge=1.3 / size)
    skin = _col(p["skin"])
    _shoulders(c, p)
    hair, hair_colour = _hair_alpha(c, p), _hair_colour(p, x, y)
    c.paint(hair, hair_colour, HAIR, cover=True)
    _neck_and_ears(c, p, skin)
    _face(c, p, skin)
    _eyes(c, p)
    _nose(c, p)
    _mouth(c, p)
    c.paint(hair * torch.sigmoid((_hairline(p, x) - y) / c.edge), hair_colour, HAIR)
    _lighting(c, p)
    image = c.image.clamp_(0, 1).mul_(2).sub_(1)
    return {"image": image, "boxes": _boxes(params, size), "parsing": c.parsing,
            "sketch": _sketch(image, c.parsing)}


# ----------------------------------------------------------------------------------------------- blemishes
_N_ACNE, _N_RED, _N_DARK, _N_PITS = 40, 10, 24, 140
_LIGHT = (-0.55, -0.83)  # direction of the light that embosses pits and raised spots


def _eye_anchors(parsing: Tensor) -> dict[str, Tensor]:
    """Eye centres, distance and height (normalised coords, (B,)) from the parsing map's 'eyes' pixels."""
    _, h, w = parsing.shape
    x, y = _grid(h, w, parsing.device)
    eyes = (parsing == EYES).float()
    left = eyes * (x < 0).float()
    out = {}
    for name, m, default_x in (("lx", left, -0.3), ("rx", eyes - left, 0.3)):
        n = m.sum((1, 2))
        ok = n > 0
        out[name] = torch.where(ok, (m * x).sum((1, 2)) / n.clamp(min=1), default_x)
        out[name + "_y"] = torch.where(ok, (m * y).sum((1, 2)) / n.clamp(min=1), -0.2)
    n = eyes.sum((1, 2))
    ey = (out["lx_y"] + out["rx_y"]) / 2
    var = (eyes * (y - ey.view(-1, 1, 1)) ** 2).sum((1, 2)) / n.clamp(min=1)
    out["ey"], out["eh"] = ey, torch.where(n > 0, 2 * var.sqrt(), 0.045).clamp(0.02, 0.08)
    out["cx"], out["dist"] = (out["lx"] + out["rx"]) / 2, (out["rx"] - out["lx"]).clamp(0.3, 0.9)
    return out


def _sample_blemishes(indices: Tensor, seed: int, anchors: dict[str, Tensor]) -> dict[str, tuple]:
    """Spot tables (xs, ys, sx, sy, amp), each (B, K), for every blemish kind; the counts follow a
    per-face severity, so some faces are mild and some heavy. Acne is on every face (at least 2 spots), so no
    raw image equals its retouched one (an identical pair has an infinite PSNR)."""
    n = 16 + 5 * (_N_ACNE + _N_RED + _N_DARK) + 4 * _N_PITS
    d = _Draw(_uniforms(indices, seed, _BLEMISH_SALT, n))
    severity = d.raw() ** 1.4
    kinds = {"acne": (_N_ACNE, 1.0, 0.004, 0.012), "red": (_N_RED, 0.65, 0.014, 0.034),
             "dark": (_N_DARK, 0.6, 0.004, 0.016)}
    cx, ey, dist = anchors["cx"][:, None], anchors["ey"][:, None], anchors["dist"][:, None]
    out = {}
    for kind, (k, p_on, s_lo, s_hi) in kinds.items():
        count = (d.raw() < p_on).float() * (2 + severity * d(0.4, 1.0) * (k - 2))
        xs = cx + dist * (torch.stack([d.raw() for _ in range(k)], 1) * 1.9 - 0.95)
        ys = ey + dist * (torch.stack([d.raw() for _ in range(k)], 1) * 2.1 - 0.75)
        sx = torch.stack([d(s_lo, s_hi) for _ in range(k)], 1)
        sy = sx * torch.stack([d(0.7, 1.4) for _ in range(k)], 1)
        active = (torch.arange(k)[None] < count[:, None]).float()
        amp = active * torch.stack([d(0.5, 1.0) for _ in range(k)], 1)
        out[kind] = (xs, ys, sx, sy, amp * (0.6 + 0.6 * severity[:, None]))
    out["pits"] = _sample_pits(d, severity, cx, ey, dist)
    out["circles"] = _sample_circles(d, anchors)
    return out


def _sample_pits(d: _Draw, severity: Tensor, cx, ey, dist) -> tuple:
    """Pockmarks: small pits scattered around one or two cheek centres."""
    k = _N_PITS
    present = (d.raw() < 0.45).float()
    both = d.raw() < 0.5
    side = torch.where(d.raw() < 0.5, -1.0, 1.0)[:, None]
    pick = torch.stack([d.raw() for _ in range(k)], 1)
    side = torch.where(both[:, None], torch.where(pick < 0.5, -1.0, 1.0), side)
    radius = torch.stack([d.raw() for _ in range(k)], 1).sqrt() * 0.28 * dist
    angle = torch.stack([d.raw() for _ in range(k)], 1) * 2 * math.pi
    xs = cx + side * 0.55 * dist + radius * torch.cos(angle)
    ys = ey + 0.6 * dist + radius * torch.sin(angle) * 1.2
    sx = torch.stack([d(0.0035, 0.008) for _ in range(k)], 1)
    count = present * (20 + severity * (k - 20))
    amp = (torch.arange(k)[None] < count[:, None]).float() * (0.7 + 0.5 * severity[:, None])
    return xs, ys, sx, sx, amp


def _sample_circles(d: _Draw, anchors: dict[str, Tensor]) -> tuple:
    """Dark circles: one wide, flat spot under each eye."""
    strength = (d.raw() < 0.6).float() * d(0.4, 1.0)
    xs = torch.stack([anchors["lx"], anchors["rx"]], 1)
    ys = (anchors["ey"] + anchors["eh"] * 1.2 + 0.03)[:, None].expand(-1, 2)
    sx = (0.2 * anchors["dist"])[:, None].expand(-1, 2)
    return xs, ys, sx, torch.full_like(sx, 0.035), strength[:, None].expand(-1, 2)


def _spot_field(table: tuple, x: Tensor, y: Tensor, grad: bool = False):
    """Sum of axis-aligned Gaussian spots (B, H, W), separable so it is one batched matmul; with `grad`,
    also the x / y derivatives scaled by each spot's sigma (dimensionless)."""
    xs, ys, sx, sy, amp = (t.to(x.device)[..., None] for t in table)
    sx = sx.clamp(min=0.6 * float(x[1] - x[0]))  # at least ~half a pixel, so small sizes do not alias
    sy = sy.clamp(min=0.6 * float(y[1] - y[0]))
    dx, dy = (x - xs) / sx, (y - ys) / sy
    gx, gy = torch.exp(-0.5 * dx * dx), torch.exp(-0.5 * dy * dy) * amp
    field = torch.bmm(gy.transpose(1, 2), gx)
    if not grad:
        return field
    return field, -torch.bmm(gy.transpose(1, 2), gx * dx), -torch.bmm((gy * dy).transpose(1, 2), gx)


def _skin_weight(parsing: Tensor) -> Tensor:
    """Skin mask (B, 1, H, W) that fades over a pixel inside the skin boundary and is 0 off skin."""
    skin = (parsing == SKIN).float().unsqueeze(1)
    return F.avg_pool2d(F.pad(skin, (1, 1, 1, 1), mode="replicate"), 3, stride=1) * skin


def _apply_blemishes(clean: Tensor, fields: dict[str, Tensor], skin: Tensor) -> Tensor:
    """Colour changes in [0, 1] RGB, each blemish field weighted by the skin mask."""
    def tint(*rgb):
        return torch.tensor(rgb, device=clean.device).view(1, 3, 1, 1)

    lx, ly = _LIGHT
    c = (clean + 1) / 2
    acne, acne_dx, acne_dy = (f.unsqueeze(1) for f in fields["acne"])
    red = (1 - torch.exp(-(acne + fields["red"].unsqueeze(1)))) * skin
    c = c * (1 - red * tint(0.04, 0.42, 0.36)) - 0.1 * (acne_dx * lx + acne_dy * ly) * skin * red
    head = (1 - torch.exp(-fields["head"].unsqueeze(1))) * skin
    c = torch.lerp(c, tint(1.0, 0.94, 0.78) * c.amax(1, keepdim=True).clamp(min=0.6), 0.7 * head)
    dark = (1 - torch.exp(-fields["dark"].unsqueeze(1))) * skin
    c = c * (1 - dark * tint(0.36, 0.46, 0.52))
    c = c * (1 - fields["circles"].unsqueeze(1).clamp(max=1) * skin * tint(0.13, 0.19, 0.12))
    pits, pits_dx, pits_dy = (f.unsqueeze(1) for f in fields["pits"])
    c = c * (1 - 0.12 * pits.clamp(max=1.5) * skin) + 0.14 * (pits_dx * lx + pits_dy * ly) * skin
    return c.clamp(0, 1) * 2 - 1


def _difference_mask(raw: Tensor, clean: Tensor) -> Tensor:
    """Soft mask of where raw differs from clean: 0 below ~1.5 grey levels, 1 from ~17 levels up."""
    diff = (raw - clean).abs().amax(1, keepdim=True)
    return ((diff - 0.012) / 0.12).clamp(0, 1)


def add_blemishes(image: Tensor, parsing: Tensor, indices, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Turn clean faces (B,3,H,W) [-1,1] into raw ones with acne, red and dark spots, pockmarks and dark
    circles on the skin of `parsing` (B,H,W). Returns raw (B,3,H,W) [-1,1] and mask (B,1,H,W) [0,1]."""
    idx = _as_indices(indices)
    if len(idx) != image.shape[0]:
        raise ValueError(f"{len(idx)} indices for a batch of {image.shape[0]} images")
    _, _, h, w = image.shape
    x, y = _grid(h, w, image.device)
    x, y = x.view(-1), y.view(-1)
    tables = _sample_blemishes(idx, seed, {k: v.cpu() for k, v in _eye_anchors(parsing).items()})
    xs, ys, sx, sy, amp = tables["acne"]
    heads = (xs, ys, sx * 0.35, sx * 0.35, amp * (amp > 0.75).float() * 1.5)  # whiteheads on the strongest
    fields = {"acne": _spot_field(tables["acne"], x, y, grad=True), "red": _spot_field(tables["red"], x, y),
              "head": _spot_field(heads, x, y), "dark": _spot_field(tables["dark"], x, y),
              "pits": _spot_field(tables["pits"], x, y, grad=True),
              "circles": _spot_field(tables["circles"], x, y)}
    raw = _apply_blemishes(image, fields, _skin_weight(parsing))
    return raw, _difference_mask(raw, image)


# ----------------------------------------------------------------------------------------------- writers
def _args_record(**kwargs) -> dict:
    return {"format_version": _FORMAT_VERSION, **kwargs}


def _is_done(root: Path, record: dict) -> bool:
    try:
        return json.loads((root / "DONE.json").read_text()) == record
    except (OSError, ValueError):
        return False


def _write_json(path: Path, data: dict) -> None:
    """One entry per line, written to a temporary name first and then renamed into place."""
    lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in data.items())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("{\n" + lines + "\n}\n" if data else "{}\n")
    tmp.replace(path)


def _batches(start: int, stop: int, batch_size: int):
    for lo in range(start, stop, max(1, int(batch_size))):
        yield list(range(lo, min(lo + max(1, int(batch_size)), stop)))


def _box_list(boxes: Tensor) -> list[list[float]]:
    return [[round(float(v), 2) for v in box] for box in boxes]


def write_ffhqr(root, sizes: Mapping[str, int] = _DEFAULT_SPLITS, size: int = 256, seed: int = 0,
                batch_size: int = 32) -> Path:
    """Write the FFHQR layout under `root`: {split}/source (raw), {split}/target (clean), {split}/mask (soft
    8-bit) PNGs named by zero-padded global index, and {split}/boxes.json (name -> 4 boxes, COMPONENTS
    order). Splits take consecutive disjoint index ranges in the order given. DONE.json is written last;
    if it already records the same arguments nothing is done, otherwise the splits are rewritten."""
    root, sizes = Path(root), {str(k): int(v) for k, v in dict(sizes).items()}
    record = _args_record(kind="ffhqr", sizes=sizes, size=int(size), seed=int(seed))
    if _is_done(root, record):
        return root
    (root / "DONE.json").unlink(missing_ok=True)
    width, start = max(5, len(str(max(sum(sizes.values()) - 1, 0)))), 0
    for split, n in sizes.items():
        folder = root / split
        shutil.rmtree(folder, ignore_errors=True)
        boxes = {}
        for batch in _batches(start, start + n, batch_size):
            faces = render_faces(batch, size, seed)
            raw, mask = add_blemishes(faces["image"], faces["parsing"], batch, seed)
            for j, index in enumerate(batch):
                name = f"{index:0{width}d}"
                write_image(folder / "source" / f"{name}.png", raw[j])
                write_image(folder / "target" / f"{name}.png", faces["image"][j])
                write_image(folder / "mask" / f"{name}.png", mask[j])
                boxes[name] = _box_list(faces["boxes"][j])
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "boxes.json", boxes)
        start += n
    _write_json(root / "DONE.json", record)
    return root


def write_faces(root, n: int, size: int = 256, seed: int = 0, batch_size: int = 32) -> Path:
    """Write `n` clean faces as root/{name}.png (zero-padded index) plus root/boxes.json; same DONE.json
    idempotency as `write_ffhqr`."""
    root = Path(root)
    record = _args_record(kind="faces", n=int(n), size=int(size), seed=int(seed))
    if _is_done(root, record):
        return root
    (root / "DONE.json").unlink(missing_ok=True)
    if root.is_dir():
        for old in root.iterdir():
            if re.fullmatch(r"\d+\.png", old.name):
                old.unlink()
    root.mkdir(parents=True, exist_ok=True)
    width, boxes = max(5, len(str(max(int(n) - 1, 0)))), {}
    for batch in _batches(0, int(n), batch_size):
        faces = render_faces(batch, size, seed)
        for j, index in enumerate(batch):
            name = f"{index:0{width}d}"
            write_image(root / f"{name}.png", faces["image"][j])
            boxes[name] = _box_list(faces["boxes"][j])
    _write_json(root / "boxes.json", boxes)
    _write_json(root / "DONE.json", record)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m facezoo.datamodules.synthetic",
                                     description="Render the procedural face data set.")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    for split, n in _DEFAULT_SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=n, help=f"number of {split} faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--faces-only", type=int, metavar="N", help="write N clean faces only (restoration)")
    args = parser.parse_args(argv)
    if args.faces_only is not None:
        out = write_faces(args.out, args.faces_only, args.size, args.seed, args.batch_size)
    else:
        sizes = {"train": args.train, "val": args.val, "test": args.test}
        out = write_ffhqr(args.out, sizes, args.size, args.seed, args.batch_size)
    print(out)


if __name__ == "__main__":
    main()
