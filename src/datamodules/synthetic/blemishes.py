"""Blemishes on rendered faces: acne, red and dark spots, pockmarks and dark circles on the skin of a parsing
map, with the soft mask of where the raw face differs from the clean one. Deterministic in (seed, index)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.datamodules.synthetic.canvas import pixel_grid
from facezoo.datamodules.synthetic.renderer import EYES, SKIN
from facezoo.datamodules.synthetic.sampling import Draw, as_indices, uniforms

_BLEMISH_SALT = 0xB1E_3157
_N_ACNE, _N_RED, _N_DARK, _N_PITS = 40, 10, 24, 140
_LIGHT = (-0.55, -0.83)  # direction of the light that embosses pits and raised spots


def _eye_anchors(parsing: Tensor) -> dict[str, Tensor]:
    """Eye centres, distance and height (normalised coords, (B,)) from the parsing map's 'eyes' pixels."""
    _, h, w = parsing.shape
    x, y = pixel_grid(h, w, parsing.device)
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
    d = Draw(uniforms(indices, seed, _BLEMISH_SALT, n))
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


def _sample_pits(d: Draw, severity: Tensor, cx, ey, dist) -> tuple:
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


def _sample_circles(d: Draw, anchors: dict[str, Tensor]) -> tuple:
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
    idx = as_indices(indices)
    if len(idx) != image.shape[0]:
        raise ValueError(f"{len(idx)} indices for a batch of {image.shape[0]} images")
    _, _, h, w = image.shape
    x, y = pixel_grid(h, w, image.device)
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
