"""Image grids for sample logging: rows of input | output | target | mask, in plain torch."""

import torch
import torch.nn.functional as F


def as_rgb(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1] -> (B, 3, H, W) in [-1, 1]."""
    return mask.expand(-1, 3, -1, -1) * 2 - 1


def make_grid(columns: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """Each column is (B, 3, H, W) in [-1, 1]; returns one (3, H', W') image, a row per sample."""
    size = columns[0].shape[-2:]
    columns = [
        F.interpolate(c.float(), size=size, mode="bilinear", align_corners=False)
        if c.shape[-2:] != size
        else c.float()
        for c in columns
    ]
    cells = torch.stack(columns, dim=1).clamp(-1, 1)  # (B, C, 3, H, W)
    cells = F.pad(cells, (pad, pad, pad, pad), value=1.0)
    b, c, ch, h, w = cells.shape
    return cells.permute(2, 0, 3, 1, 4).reshape(ch, b * h, c * w)
