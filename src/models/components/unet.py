"""The Pix2Pix U-Net generator (Isola et al. 2017, "U-Net 256" with `depth` down-sampling levels).

Encoder: 4×4 stride-2 convs, LeakyReLU 0.2, InstanceNorm (no norm on the first and innermost layers);
decoder: 4×4 stride-2 transposed convs, ReLU, InstanceNorm, optional dropout on the three innermost
decoder levels; skip connections concatenate encoder features; Tanh output in [-1, 1] (`tanh=False`: raw
outputs, e.g. mask logits).
"""

import torch
from torch import nn


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers = [nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    return nn.Sequential(*layers, *([nn.InstanceNorm2d(cout, affine=True)] if norm else []))


def _up(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers = [
        nn.ReLU(),
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
        nn.InstanceNorm2d(cout, affine=True),
    ]
    return nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout > 0 else []))


class UNetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        depth: int = 8,
        max_channels: int = 512,
        dropout: float = 0.0,
        tanh: bool = True,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNetGenerator depth={depth}: expected at least 2 levels")
        self.depth = depth
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.stem = nn.Conv2d(in_channels, widths[0], 4, 2, 1)
        self.downs = nn.ModuleList(
            _down(widths[i - 1], widths[i], norm=i < depth - 1) for i in range(1, depth)
        )
        ups = [_up(widths[-1], widths[-2], dropout)]  # innermost: no skip input yet
        for i in range(depth - 2, 0, -1):
            ups.append(_up(widths[i] * 2, widths[i - 1], dropout if i >= depth - 3 else 0.0))
        self.ups = nn.ModuleList(ups)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(widths[0] * 2, out_channels, 4, 2, 1),
            *([nn.Tanh()] if tanh else []),
        )

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = self.ups[0](skips.pop())
        for up in self.ups[1:]:
            h = up(torch.cat([h, skips.pop()], dim=1))
        return self.head(torch.cat([h, skips.pop()], dim=1))
