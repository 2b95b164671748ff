"""Soft 2-D drawing in normalised coordinates (x right, y down, both in [-1, 1]), so any image size shows
the same picture: pixel-centre grids, signed distances, Gaussian bumps and a canvas painted back to front."""

import torch
from torch import Tensor


def pixel_grid(height: int, width: int, device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates: x (1, 1, W) and y (1, H, 1) in [-1, 1]."""
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (2.0 / width) - 1.0
    y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (2.0 / height) - 1.0
    return x.view(1, 1, width), y.view(1, height, 1)


def sdf_ellipse(x: Tensor, y: Tensor, cx, cy, ax, ay) -> Tensor:
    """Approximate signed distance to an axis-aligned ellipse (negative inside): (r - 1) / |grad r|.
    The x-only and y-only factors stay small, so only a few operations touch every pixel."""
    u, v = (x - cx) / ax, (y - cy) / ay
    r = torch.sqrt(u * u + (v * v + 1e-12))
    grad = torch.sqrt((u / ax) ** 2 + ((v / ay) ** 2 + 1e-12))
    return (r - 1.0) * r / grad


def gauss(x: Tensor, y: Tensor, cx, cy, sx, sy) -> Tensor:
    """Unnormalised Gaussian bump exp(-(dx/sx)^2 - (dy/sy)^2), as a product of an x and a y factor."""
    return torch.exp(-(((x - cx) / sx) ** 2)) * torch.exp(-(((y - cy) / sy) ** 2))


class Canvas:
    """RGB image in [0, 1], parsing map (label 0 where nothing is painted) and foreground cover, painted back
    to front with soft alphas.

    `crop` gives a canvas on a fixed window (views, painted in place), so small features only compute
    their own neighbourhood. Windows depend on parameter ranges, never on the batch, so results stay
    batch-independent."""

    def __init__(self, image, parsing, cover, x, y, edge: float) -> None:
        self.image, self.parsing, self.cover, self.x, self.y, self.edge = image, parsing, cover, x, y, edge

    @classmethod
    def blank(cls, background: Tensor, x: Tensor, y: Tensor, edge: float) -> "Canvas":
        b, _, h, w = background.shape
        parsing = torch.zeros((b, h, w), dtype=torch.long, device=background.device)
        return cls(background, parsing, torch.zeros(b, h, w, device=background.device), x, y, edge)

    def crop(self, x0: float, x1: float, y0: float, y1: float) -> "Canvas":
        m = 12 * self.edge  # sigmoid tails beyond the window are below 1e-5
        xs, ys = self.x.view(-1), self.y.view(-1)
        j0, j1 = int(torch.searchsorted(xs, x0 - m)), int(torch.searchsorted(xs, x1 + m))
        i0, i1 = int(torch.searchsorted(ys, y0 - m)), int(torch.searchsorted(ys, y1 + m))
        return Canvas(self.image[..., i0:i1, j0:j1], self.parsing[:, i0:i1, j0:j1],
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
