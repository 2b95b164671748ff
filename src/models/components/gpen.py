"""GPEN's networks (Yang et al., "GAN Prior Embedded Network for Blind Face Restoration in the Wild",
CVPR 2021).

`GPENGenerator`: the U-shaped generator (paper Fig. 3(c)). An encoder of ConvLayers halves the resolution from
`size` down to 4×4; the flattened 4×4 feature goes through a fully connected layer (`final_linear`) and
becomes the latent code z of the embedded StyleGAN2 (`generator`), which maps it to w with its own mapping
network (as the official FullGenerator: `input_is_latent=False`, one w broadcast to every layer). The encoder
feature at each resolution replaces the noise input of both StyleGAN2 layers at that resolution (the 4×4
feature feeds `conv1`), concatenated on the channel axis (`isconcat=True`, the paper's choice; `False` is the
"sum" ablation of paper Fig. 6(d)).

Module and parameter names are those of the official `FullGenerator` (face_model/gpen_model.py):
`generator.*` (rosinality StyleGAN2 names), `ecd0.0.0.weight`, `ecd1.0.0.kernel`, `ecd1.0.1.weight`, …,
`final_linear.0.weight`, so a released state_dict (GPEN-BFR-512.pth: 163 tensors, 71.0M elements) loads 1:1.

The IR-SE50 ArcFace of the identity loss (`IRSE50`, `gpen_identity_crop`) lives in
src/models/components/arcface.py.
"""

import math

import torch
from torch import nn

from facezoo.models.components.stylegan2 import (
    BLUR_KERNEL,
    ConvLayer,
    EqualLinear,
    Generator,
    stylegan_channels,
)


class GPENGenerator(nn.Module):
    """GPEN's U-shaped generator. Input and output are (B, 3, size, size) in [-1, 1] (output unclamped).

    `size` 256 / 512 / 1024 …; the releases are GPEN-BFR-512 (channel_multiplier 2, narrow 1) and
    GPEN-BFR-256 (channel_multiplier 1, narrow 0.5). Encoder widths equal the decoder widths per resolution
    (`stylegan_channels`), since each encoder feature is the decoder's concatenated "noise".
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        isconcat: bool = True,
        blur_kernel=BLUR_KERNEL,
        lr_mlp: float = 0.01,
    ) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        blur_kernel = tuple(blur_kernel)
        self.generator = Generator(
            size, style_dim, n_mlp, channel_multiplier, narrow, isconcat=isconcat, blur_kernel=blur_kernel,
            lr_mlp=lr_mlp,
        )
        self.log_size = self.generator.log_size
        channels = stylegan_channels(channel_multiplier, narrow)
        # ecd0: 1×1 from RGB at full size; ecd1…ecd{log_size−2}: blur-downsampling 3×3 ConvLayers to 4×4
        self.ecd0 = nn.Sequential(ConvLayer(3, channels[size], 1))
        for k, i in enumerate(range(self.log_size, 2, -1), start=1):
            cin, cout = channels[2**i], channels[2 ** (i - 1)]
            down = ConvLayer(cin, cout, 3, downsample=True, blur_kernel=blur_kernel)
            setattr(self, f"ecd{k}", nn.Sequential(down))
        self.names = [f"ecd{k}" for k in range(self.log_size - 1)]
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 16, style_dim, activation="fused_lrelu"))

    @property
    def encoder_modules(self) -> list[nn.Module]:
        """The encoder (`ecd*` and `final_linear`): everything but the embedded StyleGAN2 `generator`."""
        return [getattr(self, name) for name in self.names] + [self.final_linear]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """→ (latent code z (B, style_dim), encoder features from `size` down to 4×4)."""
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"GPENGenerator({self.size}) got a {tuple(x.shape[-2:])} image")
        features = []
        for name in self.names:
            x = getattr(self, name)(x)
            features.append(x)
        return self.final_linear(x.flatten(1)), features

    def decoder_noise(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder features as the decoder's noise inputs: the 4×4 one for `conv1`, then each resolution's
        feature twice (both layers of that level), coarse to fine."""
        noise = [features[-1]]
        for feature in reversed(features[:-1]):
            noise += [feature, feature]
        return noise

    def forward(
        self, x: torch.Tensor, return_latents: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """→ (restored image (B, 3, size, size), w+ latent (B, n_latent, style_dim) if `return_latents`)."""
        code, features = self.encode(x)
        g = self.generator
        latent = g.w_plus([code])  # z → w through the mapping network, one w for every layer
        image = g.synthesize(latent, g.input(latent), self.decoder_noise(features))
        return image, (latent if return_latents else None)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(state_dict tensors, elements): the numbers the reference lists for released checkpoints."""
    state = module.state_dict()
    return len(state), sum(math.prod(t.shape) for t in state.values())
