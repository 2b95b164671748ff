"""GFP-GAN's "clean" StyleGAN2 generator (gfpgan/archs/stylegan2_clean_arch.py, `StyleGAN2GeneratorClean`):
the decoder of the released GFPGANv1.3 / v1.4 models, with no custom op.

It is the StyleGAN2 synthesis network with three changes against the core `Generator` (equalized LR,
upfirdn blur, transposed-conv upsampling, fused leaky ReLU):
- plain `nn.Linear` / `nn.Conv2d`-style weights with the equalized-LR scales folded into the stored values
  (modulated-conv weights drawn N(0,1)/√fan_in, `default_init_weights` for the linear layers: the modulation
  with std 1/√fan_in and bias 1, the mapping MLP Kaiming-normal for leaky ReLU 0.2 with bias 0);
- upsampling is bilinear ×2 (align_corners=False) before the 3×3 conv, and the RGB skip is upsampled
  bilinearly;
- `StyleConv` computes LeakyReLU_0.2(√2·modconv(x) + weight·noise + bias) with `bias` (1,C,1,1): the gain √2
  of the fused leaky ReLU moved before the activation (exact, since the leaky ReLU is positively homogeneous).

Key names are the official ones (`style_mlp.1.weight` … `style_mlp.15.bias`, `constant_input.weight`,
`style_conv1.modulated_conv.weight`, `style_conv1.weight` (noise), `style_conv1.bias`, `to_rgb1.*`,
`style_convs.N.*`, `to_rgbs.N.*`, `noises.noise0` …), so `stylegan_decoder.*` of GFPGANv1.3/1.4 loads 1:1.
The public interface is the core generator's (`StyleGeneratorAPI`): the StyleGAN2 pretraining module and
GFP-GAN use either.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.models.components.stylegan2 import (
    SQRT2,
    PixelNorm,
    StyleGeneratorAPI,
    _log_size,
    demodulation,
    stylegan_channels,
)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv with the scale folded into `weight` (1,out,in,k,k); `modulation` is an
    nn.Linear(style_dim, in) with bias 1. `upsample`: bilinear ×2 before the conv. Training runs the
    per-sample weights as one grouped conv, inference on a batch (eval, no gradients, B > 1) the shared-weight
    form (as the core `ModulatedConv2d`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels, self.kernel_size = out_channels, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.modulation = nn.Linear(style_dim, in_channels)
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        nn.init.constant_(self.modulation.bias, 1.0)
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in)
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        style = self.modulation(style)
        if not (self.training or torch.is_grad_enabled() or b == 1):  # inference on a batch: shared weight
            x = x * style.view(b, c, 1, 1)  # before the upsampling, which is linear per channel
            x = _upsample(x) if self.upsample else x
            out = F.conv2d(x, self.weight[0], padding=self.kernel_size // 2)
            return out * demodulation(style, self.weight[0]).view(b, -1, 1, 1) if self.demodulate else out
        weight = self.weight * style.view(b, 1, c, 1, 1)  # (b, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        if self.upsample:
            x = _upsample(x)
        h, w = x.shape[-2:]
        k = self.kernel_size
        weight = weight.reshape(b * self.out_channels, c, k, k)
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=k // 2, groups=b)
        return out.reshape(b, self.out_channels, h, w)


class StyleConv(nn.Module):
    """`modulated_conv` → ×√2 → + `weight`·noise → + `bias` (1,C,1,1) → LeakyReLU(0.2)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, upsample: bool = False
    ) -> None:
        super().__init__()
        conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample)
        self.modulated_conv = conv
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.activate = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None):
        out = self.modulated_conv(x, style) * SQRT2
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[-2:]).normal_()
        return self.activate(out + self.weight * noise + self.bias)


class ToRGB(nn.Module):
    """1×1 modulated conv without demodulation + `bias` (1,3,1,1), plus the bilinearly upsampled skip."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is None:
            return out
        return out + (_upsample(skip) if self.upsample else skip)


class ConstantInput(nn.Module):
    """The learned 4×4 constant `weight` (1,C,4,4)."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))


class CleanGenerator(StyleGeneratorAPI, nn.Module):
    """StyleGAN2GeneratorClean: `style_mlp` (NormStyleCode, then n_mlp × (nn.Linear, LeakyReLU 0.2): keys
    `style_mlp.1`, `.3` …), `constant_input`, `style_conv1` + `to_rgb1` at 4×4, per resolution 8…size an
    upsampling and a plain `StyleConv` (`style_convs.2i`, `.2i+1`) and `to_rgbs.i`; stored noise maps
    `noises.noise{i}`. Widths: `stylegan_channels(channel_multiplier, narrow)`."""

    isconcat = False  # the noise is added, never concatenated (for code written for the core Generator)

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
    ) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.log_size = _log_size(size)
        self.n_latent = 2 * self.log_size - 2
        self.num_layers = 2 * self.log_size - 3
        self.channels = stylegan_channels(channel_multiplier, narrow)

        mlp = [PixelNorm()]  # the official NormStyleCode: the same pixel norm
        for _ in range(n_mlp):
            linear = nn.Linear(style_dim, style_dim)
            nn.init.kaiming_normal_(linear.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)
            mlp += [linear, nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)
        c4 = self.channels[4]
        self.constant_input = ConstantInput(c4)
        self.style_conv1 = StyleConv(c4, c4, 3, style_dim)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)
        self.style_convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        in_channels = c4
        for i in range(3, self.log_size + 1):
            out_channels = self.channels[2**i]
            self.style_convs.append(StyleConv(in_channels, out_channels, 3, style_dim, upsample=True))
            self.style_convs.append(StyleConv(out_channels, out_channels, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_channels, style_dim))
            in_channels = out_channels

    @property
    def style(self) -> nn.Sequential:
        """The mapping network z → w (the core Generator's name for it)."""
        return self.style_mlp

    def synthesis_layers(self) -> tuple[nn.Module, nn.Module, nn.ModuleList, nn.ModuleList]:
        return self.style_conv1, self.to_rgb1, self.style_convs, self.to_rgbs

    def first_feature(self, latent: torch.Tensor) -> torch.Tensor:
        """The learned constant, one per sample of `latent`."""
        return self.constant_input.weight.expand(latent.shape[0], -1, -1, -1)

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]
