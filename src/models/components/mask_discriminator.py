"""RetouchFormer's discriminator D: pixel-level real/fake decisions with the soft imperfection mask H̄(x)
injected into several layers (paper, "Model Training": imperfection regions can be tiny and an image-level
discriminator is easily fooled, so the mask is fed to every layer to focus D on the retouched regions).

Layout (the paper gives none): the released code's patch D — 5×5 spectrally normalised convs, stride 2 for
the first `n_down` layers, then stride 1 — with the mask, resized to each layer's input, concatenated to it.
The output is a logit map at 1/2**n_down of the input size (one decision per small patch of pixels)."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class MaskInjectedDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 32,
        n_down: int = 3,
        n_flat: int = 2,
        max_channels: int = 512,
        use_spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        widths = [min(base_channels * 2**i, max_channels) for i in range(n_down + n_flat)]
        cin = in_channels
        self.convs = nn.ModuleList()
        for i, cout in enumerate(widths):
            self.convs.append(sn(nn.Conv2d(cin + 1, cout, 5, 2 if i < n_down else 1, 2)))
            cin = cout
        self.head = nn.Conv2d(cin + 1, 1, 3, 1, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = image
        for conv in [*self.convs, self.head]:
            m = (
                F.interpolate(mask, size=h.shape[-2:], mode="area")
                if mask.shape[-2:] != h.shape[-2:]
                else mask
            )
            h = conv(torch.cat([h, m], dim=1))
            if conv is not self.head:
                h = F.leaky_relu(h, 0.2)
        return h
