"""The Pix2Pix PatchGAN discriminator: a conv net whose output is one real/fake logit per image patch.

With `n_layers=3` each logit sees a 70×70 receptive field. Conditional use concatenates the input image
with the real or generated output along channels (`in_channels = 6`).
"""

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 6, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for i in range(1, n_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1, bias=False), nn.InstanceNorm2d(out, affine=True)]
            layers += [nn.LeakyReLU(0.2)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
