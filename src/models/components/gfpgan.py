"""GFP-GAN's generators (Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial
Prior", CVPR 2021): a U-Net "degradation removal module" whose 4×4 bottleneck gives the w+ code of a
pretrained StyleGAN2 decoder (`input_is_latent`, `different_w`: one w per layer, the mapping MLP bypassed)
and whose decoder path gives one (scale, shift) pair per resolution 8…out_size, applied to the StyleGAN2
features by CS-SFT (`channel_split_sft`). Each U-Net level also gives an RGB image (`toRGB`) for the pyramid
loss.

Two released variants, with the official top-level names (conv_body_first, conv_body_down, final_conv,
conv_body_up, toRGB, final_linear, stylegan_decoder, condition_scale, condition_shift) so the official
state_dicts load by name:
- `GFPGANv1Clean` (gfpgan/archs/gfpganv1_clean_arch.py; GFPGANv1.3 / v1.4): plain convs, bilinear resampling,
  the clean StyleGAN2 decoder (`CleanGenerator`).
- `GFPGANv1` (gfpgan/archs/gfpganv1_arch.py; the paper model GFPGANv1.pth): BasicSR's equalized-LR layers,
  blur-downsampling ResBlocks, and BasicSR's StyleGAN2Generator as decoder. That decoder is our core
  `Generator` (the same network; `facezoo.weights.stylegan2` maps BasicSR's decoder names to ours).

U-Net widths are half the decoder widths at each resolution (`unet_narrow = 0.5·narrow`). With `sft_half`
the conditions modulate half of the decoder channels, so they have the U-Net width; otherwise twice that.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.models.components.stylegan2 import (
    BLUR_KERNEL,
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    Generator,
    ResBlock,
    _log_size,
    stylegan_channels,
)
from facezoo.models.components.stylegan2_clean import CleanGenerator


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class GFPGANBase(nn.Module):
    """The forward pass both variants share; subclasses build the official modules."""

    variant = ""

    def __init__(
        self, out_size: int, num_style_feat: int, input_is_latent: bool, different_w: bool, sft_half: bool,
        fix_decoder: bool,
    ) -> None:
        super().__init__()
        self.size, self.style_dim = out_size, num_style_feat
        self.log_size = _log_size(out_size)
        self.input_is_latent, self.different_w = input_is_latent, different_w
        self.sft_half, self.fix_decoder = sft_half, fix_decoder

    def _latent_width(self) -> int:
        """final_linear's outputs: one w per decoder layer (`different_w`) or a single one."""
        return (2 * self.log_size - 2 if self.different_w else 1) * self.style_dim

    def _freeze_decoder(self) -> None:
        if self.fix_decoder:
            self.stylegan_decoder.requires_grad_(False)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """The activation after `conv_body_first` and `final_conv` when they do not hold one."""
        return x

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.stylegan_decoder.parameters())

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the generator optimizer updates: everything but the decoder when `fix_decoder`."""
        decoder = {id(p) for p in self.decoder_parameters()} if self.fix_decoder else set()
        return [p for p in self.parameters() if id(p) not in decoder]

    def forward(
        self, x: torch.Tensor, return_rgb: bool = True, randomize_noise: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B,3,out_size,out_size) in [-1,1] → (restored image, unclamped; the pyramid RGB images at
        8…out_size, or [] without `return_rgb`). `randomize_noise=False` uses the decoder's stored noise."""
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(
                f"{type(self).__name__}(out_size={self.size}) got a {tuple(x.shape[-2:])} image: expected "
                f"{self.size}×{self.size} aligned faces"
            )
        feat = self.activate(self.conv_body_first(x))
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.insert(0, feat)
        feat = self.activate(self.final_conv(feat))
        style_code = self.final_linear(feat.flatten(1))
        if self.different_w:
            style_code = style_code.view(x.shape[0], -1, self.style_dim)
        conditions, out_rgbs = [], []
        for skip, up, scale, shift, to_rgb in zip(
            unet_skips, self.conv_body_up, self.condition_scale, self.condition_shift, self.toRGB, strict=True
        ):
            feat = up(feat + skip)
            conditions.append((scale(feat), shift(feat)))
            if return_rgb:
                out_rgbs.append(to_rgb(feat))
        decoder = self.stylegan_decoder
        latent = decoder.w_plus([style_code], input_is_latent=self.input_is_latent)
        noise = decoder.noise_inputs(randomize_noise)
        image = decoder.synthesize(latent, decoder.first_feature(latent), noise, conditions, self.sft_half)
        return image, out_rgbs


# --- GFPGANv1Clean -----------------------------------------------------------------------------------------


class CleanResBlock(nn.Module):
    """gfpganv1_clean_arch.py `ResBlock`: lrelu(conv1) → bilinear ×factor → lrelu(conv2), plus the skip:
    bilinear ×factor → 1×1 conv without bias (no ÷√2)."""

    def __init__(self, in_channels: int, out_channels: int, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _resize(F.leaky_relu(self.conv1(x), 0.2), self.factor)
        out = F.leaky_relu(self.conv2(out), 0.2)
        return out + self.skip(_resize(x, self.factor))


def _condition(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(channels, out_channels, 3, 1, 1)
    )


class GFPGANv1Clean(GFPGANBase):
    """GFPGANv1.3 / v1.4 (release config: out_size 512, num_style_feat 512, channel_multiplier 2, num_mlp 8,
    input_is_latent, different_w, narrow 1, sft_half): 285 tensors. The condition convs keep PyTorch's
    default initialisation, as the official class does."""

    variant = "clean"

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: int = 2,
        num_mlp: int = 8,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1.0,
        sft_half: bool = True,
        fix_decoder: bool = True,
    ) -> None:
        super().__init__(out_size, num_style_feat, input_is_latent, different_w, sft_half, fix_decoder)
        channels = stylegan_channels(channel_multiplier, 0.5 * narrow)
        resolutions = [2**i for i in range(3, self.log_size + 1)]  # decoder levels 8 … out_size
        self.conv_body_first = nn.Conv2d(3, channels[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            CleanResBlock(channels[r], channels[r // 2], 0.5) for r in reversed(resolutions)
        )
        self.final_conv = nn.Conv2d(channels[4], channels[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(
            CleanResBlock(channels[r // 2], channels[r], 2) for r in resolutions
        )
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[r], 3, 1) for r in resolutions)
        self.final_linear = nn.Linear(channels[4] * 16, self._latent_width())
        self.stylegan_decoder = CleanGenerator(out_size, num_style_feat, num_mlp, channel_multiplier, narrow)
        sft = 1 if sft_half else 2
        self.condition_scale = nn.ModuleList(_condition(channels[r], sft * channels[r]) for r in resolutions)
        self.condition_shift = nn.ModuleList(_condition(channels[r], sft * channels[r]) for r in resolutions)
        self._freeze_decoder()

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2)


# --- GFPGANv1 (the paper model) ----------------------------------------------------------------------------


class ConvUpLayer(EqualConv2d):
    """gfpganv1_arch.py `ConvUpLayer`: bilinear ×2, then an equalized-LR conv; with `activate` the bias lives
    in the fused leaky ReLU (`activation.bias`)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, activate: bool = True
    ) -> None:
        padding = kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, bias=bias and not activate)
        self.activation = FusedLeakyReLU(out_channels, bias=bias) if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(_resize(x, 2))
        return out if self.activation is None else self.activation(out)


class ResUpBlock(nn.Module):
    """gfpganv1_arch.py `ResUpBlock`: ConvLayer 3×3 → ConvUpLayer 3×3, plus a 1×1 ConvUpLayer skip, ÷√2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvUpLayer(in_channels, out_channels, 3)
        self.skip = ConvUpLayer(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def _equal_condition(channels: int, out_channels: int, bias_init: float) -> nn.Sequential:
    """EqualConv2d → ScaledLeakyReLU(0.2) (leaky ReLU ×√2, no bias) → EqualConv2d with bias `bias_init`."""
    last = EqualConv2d(channels, out_channels, 3, 1, 1)
    nn.init.constant_(last.bias, bias_init)
    return nn.Sequential(EqualConv2d(channels, channels, 3, 1, 1), FusedLeakyReLU(channels, bias=False), last)


class GFPGANv1(GFPGANBase):
    """The paper model GFPGANv1.pth (release config: out_size 512, channel_multiplier 1, resample_kernel
    (1,3,3,1), lr_mlp 0.01, input_is_latent, different_w, sft_half, fix_decoder). The scale branch's last bias
    starts at 1 (identity modulation), the shift branch's at 0."""

    variant = "original"

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: int = 1,
        resample_kernel=BLUR_KERNEL,
        num_mlp: int = 8,
        lr_mlp: float = 0.01,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1.0,
        sft_half: bool = True,
        fix_decoder: bool = True,
    ) -> None:
        super().__init__(out_size, num_style_feat, input_is_latent, different_w, sft_half, fix_decoder)
        resample_kernel = tuple(resample_kernel)
        channels = stylegan_channels(channel_multiplier, 0.5 * narrow)
        resolutions = [2**i for i in range(3, self.log_size + 1)]
        self.conv_body_first = ConvLayer(3, channels[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(channels[r], channels[r // 2], resample_kernel) for r in reversed(resolutions)
        )
        self.final_conv = ConvLayer(channels[4], channels[4], 3)
        self.conv_body_up = nn.ModuleList(ResUpBlock(channels[r // 2], channels[r]) for r in resolutions)
        self.toRGB = nn.ModuleList(EqualConv2d(channels[r], 3, 1) for r in resolutions)
        self.final_linear = EqualLinear(channels[4] * 16, self._latent_width())
        self.stylegan_decoder = Generator(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, isconcat=False,
            blur_kernel=resample_kernel, lr_mlp=lr_mlp,
        )
        sft = 1 if sft_half else 2
        self.condition_scale = nn.ModuleList(
            _equal_condition(channels[r], sft * channels[r], 1.0) for r in resolutions
        )
        self.condition_shift = nn.ModuleList(
            _equal_condition(channels[r], sft * channels[r], 0.0) for r in resolutions
        )
        self._freeze_decoder()
