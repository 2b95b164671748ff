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

`IRSE50`: the IR-SE50 ArcFace backbone (InsightFace_Pytorch's `Backbone(112, 50, 'ir_se')`, key names of
model_ir_se50.pth, 397 tensors) used by the official simplified training loop's identity loss.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.models.components.stylegan2 import (
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


# --- IR-SE50 (identity embedding) ------------------------------------------------------------------------


class SEModule(nn.Module):
    """Squeeze-and-excitation with 1×1 convs without bias (`fc1`, `fc2`), reduction 16."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


class BottleneckIRSE(nn.Module):
    """Improved residual unit (BN → conv3×3 → PReLU → conv3×3/stride → BN → SE) + shortcut (`res_layer`,
    `shortcut_layer`): a strided identity (1×1 max pool) when the width is kept, else conv1×1 + BN."""

    def __init__(self, in_channel: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """ArcFace IR-SE50 on 112×112 faces in [-1, 1] → L2-normalised 512-d embeddings (eval mode expected).

    Four stages of 3, 4, 14 and 3 units (64, 128, 256, 512 channels), each starting with a stride-2 unit.
    """

    STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))

    def __init__(self, drop_ratio: float = 0.6) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units = []
        for in_channel, depth, n in self.STAGES:
            units.append(BottleneckIRSE(in_channel, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (112, 112):
            raise ValueError(f"IRSE50 expects 112x112 faces, got {tuple(x.shape[-2:])}")
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def gpen_identity_crop(x: torch.Tensor) -> torch.Tensor:
    """The face region GPEN's identity loss embeds: rows 35s : H−33s, columns 32s : W−36s with s = H/256
    (the 188×188 centre of a 256 px aligned face), average-pooled to 112×112."""
    h, w = x.shape[-2:]
    s = h / 256
    top, bottom, left, right = (round(v * s) for v in (35, 33, 32, 36))
    x = x[..., top : h - bottom, left : w - right]
    return F.adaptive_avg_pool2d(x, (112, 112))


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(state_dict tensors, elements): the numbers the reference lists for released checkpoints."""
    state = module.state_dict()
    return len(state), sum(math.prod(t.shape) for t in state.values())
