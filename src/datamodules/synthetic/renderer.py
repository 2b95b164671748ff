"""A cartoonish frontal face renderer: images, parsing maps, component boxes and sketches, batched.

Deterministic in (seed, index) (sampling.py) and all per-pixel work is batched elementwise over samples, so a
face is the same whichever batch it is rendered in. Geometry lives in normalised coordinates (canvas.py), so
any image size shows the same face. Faces are aligned like FFHQ crops: eyes near 40% height and 35% / 65%
width.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.datamodules.synthetic.canvas import Canvas, gauss, pixel_grid, sdf_ellipse
from facezoo.datamodules.synthetic.sampling import Draw, as_indices, uniforms

# index = label id; 0 (background) is the canvas's unpainted label
PARSING_LABELS = ("background", "skin", "brows", "eyes", "nose", "lips", "hair")
BACKGROUND, SKIN, BROWS, EYES, NOSE, LIPS, HAIR = range(len(PARSING_LABELS))

_RENDER_SALT = 0x5EED_FACE
_N_DRAWS = 96  # uniforms per face; new parameters take unused columns so old ones keep their values

_SKIN_TONES = ((0.99, 0.86, 0.76), (0.94, 0.75, 0.62), (0.82, 0.60, 0.45), (0.62, 0.42, 0.29),
               (0.40, 0.26, 0.18))
_HAIR_COLOURS = ((0.07, 0.05, 0.045), (0.22, 0.13, 0.07), (0.42, 0.27, 0.15), (0.80, 0.64, 0.38),
                 (0.55, 0.22, 0.08), (0.52, 0.50, 0.48), (0.86, 0.84, 0.80))
_IRIS_COLOURS = ((0.28, 0.16, 0.08), (0.42, 0.26, 0.12), (0.42, 0.38, 0.16), (0.24, 0.42, 0.26),
                 (0.28, 0.48, 0.72), (0.45, 0.53, 0.58))


def _sample_params(indices: Tensor, seed: int) -> dict[str, Tensor]:
    """Per-face parameters, (B,) scalars and (B, 3) colours, in normalised coordinates."""
    d, p = Draw(uniforms(indices, seed, _RENDER_SALT, _N_DRAWS)), {}
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


def _col(c: Tensor) -> Tensor:
    return c.view(-1, 3, 1, 1)


def _const(values, like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)


def _background(p, x, y) -> Tensor:
    t = (x * torch.cos(p["bg_angle"]) + 0.5) * 0.5 + y * (torch.sin(p["bg_angle"]) * 0.5)  # in [0, 1]
    vignette = (1.0 - 0.18 * x * x) - 0.18 * y * y
    return torch.lerp(_col(p["bg0"]), _col(p["bg1"]), t.clamp(0, 1).unsqueeze(1)) * vignette.unsqueeze(1)


def _shoulders(c: Canvas, p) -> None:
    c = c.crop(-1, 1, 0.68, 1)
    c.paint(c.alpha(sdf_ellipse(c.x, c.y, p["fx"], 1.28, p["shoulder_w"], 0.55)), _col(p["cloth"]),
            BACKGROUND, cover=True)


def _hair_alpha(c: Canvas, p) -> Tensor:
    """Outer hair silhouette: a cap around the skull, united with a straight fall of `hair_len`."""
    x, y, vol = c.x, c.y, p["hair_vol"]
    cap = sdf_ellipse(x, y, p["fx"], p["cy"] - 0.05 - p["hair_top"], p["ax"] + vol, p["ay"] + 0.6 * vol)
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


def _neck_and_ears(c: Canvas, p, skin: Tensor) -> None:
    n = c.crop(-0.32, 0.32, 0.05, 1)
    neck = n.alpha(torch.maximum((n.x - p["fx"]).abs() - p["neck_w"], (p["cy"] + 0.3 * p["ay"]) - n.y))
    shadow = 0.93 - 0.23 * torch.exp(-(((n.y - p["cy"] - p["ay"]) / 0.12) ** 2))
    n.paint(neck, skin * shadow.unsqueeze(1), SKIN, cover=True)
    e = c.crop(-0.72, 0.72, -0.27, 0.07)
    visible = (p["hair_len"] < 0.15).float()
    ears = e.alpha(sdf_ellipse((e.x - p["fx"]).abs(), e.y, p["ax"] * 0.96, p["eye_y"] + 0.1, 0.065, 0.12))
    e.paint(ears * visible, skin * 0.9, SKIN, cover=True)


def _face(c: Canvas, p, skin: Tensor) -> None:
    c = c.crop(-0.64, 0.64, -0.87, 0.79)
    x, y = c.x, c.y
    below = ((y - p["cy"]) / p["ay"]).clamp(0, 1)
    ax = p["ax"] * (1.0 - p["jaw"] * below * below)  # the jaw narrows towards the chin
    face = c.alpha(sdf_ellipse(x, y, p["fx"], p["cy"], ax, p["ay"]))
    c.paint(face, skin, SKIN, cover=True)
    b = c.crop(-0.75, 0.75, -0.1, 0.45)
    blush = gauss((b.x - p["fx"]).abs(), b.y, p["eye_dx"] * 1.05, p["eye_y"] + 0.26, 0.1, 0.1)
    b.paint(blush * (p["blush"] * (b.parsing == SKIN)), _const((0.92, 0.45, 0.45), x))


def _eyes(c: Canvas, p) -> None:
    c = c.crop(-0.65, 0.65, -0.47, 0.04)
    x, y, ey, ew, eh = c.x, c.y, p["eye_y"], p["ew"], p["eh"]
    xm = (x - p["fx"]).abs()  # both eyes at once, mirrored about the face centre
    c.shade(1.0 - 0.14 * gauss(xm, y, p["eye_dx"], ey - 0.5 * eh, ew, 1.4 * eh))  # socket shadow
    eye_sdf = sdf_ellipse(xm, y, p["eye_dx"], ey, ew, eh)
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


def _brows(c: Canvas, p) -> None:
    xm = (c.x - p["fx"]).abs()
    bx, bw = p["eye_dx"] + 0.01, p["brow_w"] * p["ew"]
    t = ((xm - bx) / bw).clamp(-1, 1)  # -1 inner end, +1 outer end
    centre = p["eye_y"] - p["brow_y"] - p["brow_arch"] * (1 - t * t) + p["brow_tilt"] * t
    thick = p["brow_t"] * (1.0 - 0.45 * t.clamp(min=0))
    sdf = torch.maximum((c.y - centre).abs() - thick, (xm - bx).abs() - bw)
    c.paint(c.alpha(sdf) * 0.92, _col(p["hair"] * 0.6 + 0.04), BROWS)


def _nose(c: Canvas, p) -> None:
    c = c.crop(-0.29, 0.29, -0.21, 0.24)
    x, y = c.x, c.y
    dx, top, tip = x - p["fx"], p["eye_y"] + 0.02, p["eye_y"] + p["nose_tip"]
    xm = dx.abs()
    t = ((y - top) / (tip - top)).clamp(0, 1)
    half = p["nose_top_w"] + (p["nose_w"] - p["nose_top_w"]) * t * t
    body = torch.maximum(xm - half, torch.maximum(top - y, y - tip))
    nose = c.alpha(torch.minimum(body, sdf_ellipse(xm, y, 0.0, tip - 0.015, p["nose_w"] * 0.85, 0.045)))
    c.parsing.masked_fill_(nose > 0.5, NOSE)  # the nose has no outline: it is drawn by shading only
    side = (dx / half * (1.6 * p["light_x"])).clamp(-1, 1) * t.sqrt()  # darker away from the light
    window = t * torch.sigmoid((tip - 0.03 - y) / 0.015)  # the side line fades out above the nostrils
    ridge = torch.exp(-(((xm - half) / 0.01) ** 2)) * window * (dx * p["light_x"] > 0)
    shading = 1.0 - 0.14 * nose * side - 0.16 * ridge
    shading += 0.12 * gauss(xm, y, 0.0, tip - 0.03, 0.028, 0.022)  # lit tip
    shading -= 0.1 * gauss(xm, y, 0.75 * p["nose_w"], tip - 0.01, 0.02, 0.03)  # wings
    shading -= 0.16 * gauss(xm, y, 0.0, tip + 0.022, 0.9 * p["nose_w"], 0.016)  # shadow below
    c.shade(shading)
    nostril = c.alpha(sdf_ellipse(xm, y, p["nose_w"] * 0.5, tip + 0.002, 0.026, 0.013))
    c.paint(nostril * 0.9, _col(p["skin"] * 0.25))


def _mouth(c: Canvas, p) -> None:
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


def _lighting(c: Canvas, p) -> None:
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


def _boxes(p: dict[str, Tensor], size: int) -> Tensor:
    """(B, 4, 4) pixel boxes (x1, y1, x2, y2) in the batch's COMPONENTS order (datamodules/batch.py), from the
    face parameters."""
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
    params = _sample_params(as_indices(indices), seed)
    p = {k: v.to(device).view(-1, 1, 1) if v.dim() == 1 else v.to(device) for k, v in params.items()}
    x, y = pixel_grid(size, size, device)
    c = Canvas.blank(_background(p, x, y), x, y, edge=1.3 / size)
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
