"""DFDNet's multi-scale discriminators (Li et al., ECCV 2020, Sec. 3.3): R discriminators D_r, each on the
image down-sampled r times by 2 (r = 0 .. R−1), spectral norm on every convolution (SNGAN, as the paper
says), one real/fake logit per patch, trained with the hinge loss (`losses.adversarial`, kind "hinge").

The paper gives neither the discriminators' layers nor R. We use R = 3 and, for each D_r, the pix2pixHD /
SNGAN-style patch discriminator the paper's multi-scale design follows (Wang et al., pix2pixHD, CVPR 2018,
cited for it): 4×4 convolutions with stride 2, widths doubling from `base_channels` up to 8×, LeakyReLU 0.2,
no normalisation besides spectral norm, then a 4×4 convolution to one channel. Down-sampling between scales is
3×3 average pooling with stride 2 (pix2pixHD's).
"""

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm


def _patch_discriminator(base_channels: int, n_layers: int) -> nn.Sequential:
    layers, width = [spectral_norm(nn.Conv2d(3, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2)], base_channels
    for i in range(1, n_layers):
        out = base_channels * min(2**i, 8)
        layers += [spectral_norm(nn.Conv2d(width, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
        width = out
    layers.append(spectral_norm(nn.Conv2d(width, 1, 4, 1, 1)))
    return nn.Sequential(*layers)


class MultiScaleDiscriminator(nn.Module):
    """`forward(image) → [D_0(image), D_1(image↓2), …]`, one logit map per scale."""

    def __init__(self, scales: int = 3, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if scales < 1 or n_layers < 1:
            raise ValueError(f"MultiScaleDiscriminator: scales={scales}, n_layers={n_layers}: expected >= 1")
        self.discriminators = nn.ModuleList(
            _patch_discriminator(base_channels, n_layers) for _ in range(scales)
        )

    @staticmethod
    def down(image: Tensor) -> Tensor:
        return F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, image: Tensor) -> list[Tensor]:
        logits = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                image = self.down(image)
            logits.append(discriminator(image))
        return logits

