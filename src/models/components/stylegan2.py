"""StyleGAN2 in plain PyTorch: no custom CUDA, one pure-torch `upfirdn2d` for every FIR resampling.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020): equalized learning rate,
modulated + demodulated convolutions, a skip-architecture generator (ToRGB outputs summed over resolutions)
and a residual discriminator with minibatch standard deviation. Module and parameter names follow
rosinality/stylegan2-pytorch (`style.1.weight`, `conv1.conv.modulation.weight`, `convs.N.conv.blur.kernel`,
`to_rgbs.N.upsample.kernel`, `noises.noise_N`, `convs.0.0.weight`, `final_linear.1.bias` ...), the layout that
GPEN and StyleGANEX checkpoints extend, so those load by name. Two extensions are parameters, not copies:

- GPEN (Yang et al., CVPR 2021): `isconcat=True` concatenates the noise input instead of adding it. GPEN feeds
  its encoder features there, so every activation (and the next conv, and the ToRGB) sees 2C channels; this
  variant stores no noise buffers.
- StyleGANEX (Yang et al., ICCV 2023): `dilation=8` runs the levels 4…32 at one resolution (32×32, or the size
  of a first-layer feature) with dilated convolutions; an "upsampling" conv there becomes a dilated
  transposed conv with a fixed [1,2,1]⊗[1,2,1]/16 blur (buffer `blur_weight`), so nothing is upsampled
  before the 8th layer. The generator with its first-layer feature and encoder skips: styleganex.py.
"""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.models.components.sft import channel_split_sft

SQRT2 = math.sqrt(2)
BLUR_KERNEL = (1, 3, 3, 1)


def stylegan_channels(channel_multiplier: int = 2, narrow: float = 1.0) -> dict[int, int]:
    """Feature width per resolution (config-f for channel_multiplier=2), each scaled by `narrow` (GPEN)."""
    cm = channel_multiplier
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm}
    base |= {1024: 16 * cm, 2048: 8 * cm}
    return {res: int(width * narrow) for res, width in base.items()}


def _log_size(size: int) -> int:
    if size < 8 or size not in stylegan_channels():
        raise ValueError(f"StyleGAN2 size {size}: expected a power of two from 8 to 2048")
    return int(math.log2(size))


# --- activation and FIR resampling --------------------------------------------------------------------------


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
    inplace: bool = False,
) -> torch.Tensor:
    """bias (per channel, axis 1) + leaky ReLU 0.2, times √2 to keep the signal variance (rosinality).
    `inplace`: the same arithmetic overwriting x (for a temporary x outside autograd)."""
    bias = None if bias is None else bias.view(1, -1, *[1] * (x.ndim - 2))
    if inplace:
        if bias is not None:
            x.add_(bias)
        return F.leaky_relu_(x, negative_slope).mul_(scale)
    if bias is not None:
        x = x + bias
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, inplace=inplace)


def make_kernel(k) -> torch.Tensor:
    """A 2-D FIR kernel with unit sum; a 1-D sequence becomes its outer product with itself."""
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve each channel with `kernel` (a true
    convolution: the kernel is flipped), keep every `down`-th sample. `pad` = (before, after) on both axes.
    Upsampling without downsampling runs as the transposed convolution it equals (no zero-filled map)."""
    b, c, h, w = x.shape
    if up > 1:
        padding, extra = tuple(taps - 1 - pad[0] for taps in kernel.shape), pad[1] - pad[0] + up - 1
        if down == 1 and min(padding) >= 0 and 0 <= extra < up:  # the same sums without the inserted zeros
            weight = kernel.to(x.dtype).expand(c, 1, *kernel.shape)
            return F.conv_transpose2d(x, weight, stride=up, padding=padding, output_padding=extra, groups=c)
        x = F.pad(x.reshape(b, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1)).reshape(b, c, h * up, w * up)
    weight = kernel.flip(0, 1).to(x.dtype).expand(c, 1, *kernel.shape)
    if pad[0] == pad[1] >= 0:  # the conv pads: no padded copy
        return F.conv2d(x, weight, stride=down, padding=pad[0], groups=c)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, weight, stride=down, groups=c)


class Blur(nn.Module):
    """FIR filter with padding `pad`; `upsample_factor` rescales the kernel's gain after zero insertion."""

    def __init__(self, kernel, pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = tuple(pad)
        self.up = self.down = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, self.up, self.down, self.pad)


class Upsample(Blur):
    """×factor: zero insertion then the FIR kernel (gain factor²); H×W → factor·H × factor·W."""

    def __init__(self, kernel=BLUR_KERNEL, factor: int = 2) -> None:
        p = len(kernel) - factor
        super().__init__(kernel, ((p + 1) // 2 + factor - 1, p // 2), upsample_factor=factor)
        self.up = factor


class Downsample(Blur):
    """FIR kernel then keep every factor-th sample; H×W → H/factor × W/factor."""

    def __init__(self, kernel=BLUR_KERNEL, factor: int = 2) -> None:
        p = len(kernel) - factor
        super().__init__(kernel, ((p + 1) // 2, p // 2))
        self.down = factor


def _stylegan_ex_blur() -> torch.Tensor:
    """StyleGANEX's fixed 3×3 blur [1,2,1]⊗[1,2,1]/16, shape (1, 1, 3, 3)."""
    return make_kernel((1, 2, 1))[None, None]


# --- equalized learning rate --------------------------------------------------------------------------------


class EqualConv2d(nn.Module):
    """Conv with weights stored N(0,1) and scaled at run time by 1/√fan_in (equalized learning rate)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias=True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear layer with weights stored N(0,1)/lr_mul and scaled at run time by lr_mul/√in_dim; the bias is
    scaled by lr_mul. `activation="fused_lrelu"` adds the bias inside the fused leaky ReLU."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"EqualLinear activation {activation!r}: expected None or 'fused_lrelu'")
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Sequential):
    """z → w: PixelNorm, then n_mlp EqualLinear + fused leaky ReLU at lr_mul 0.01 (keys `1.weight` …)."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 8, lr_mul: float = 0.01) -> None:
        layers = [
            EqualLinear(style_dim, style_dim, lr_mul=lr_mul, activation="fused_lrelu") for _ in range(n_mlp)
        ]
        super().__init__(PixelNorm(), *layers)


# --- generator blocks ---------------------------------------------------------------------------------------


def demodulation(style: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The demodulation factors (B, out) of the per-sample weights weight·style, rsqrt(Σ_in,k (w·s)² + 1e-8),
    from the style (B, in) and the shared weight (out, in, k, k), without forming the per-sample weights."""
    return torch.rsqrt(style.pow(2) @ weight.pow(2).sum([2, 3]).t() + 1e-8)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv: weight (1,out,in,k,k) × per-sample style (from `modulation`, bias 1), optionally
    demodulated to unit output variance. Training runs the per-sample weights as one grouped conv (for one
    sample an ordinary conv); inference (eval mode without gradients) on a batch, or on one sample smaller
    than the weight (the wide low-resolution layers), computes the same numbers, up to rounding, as
    conv(x·style, weight) × `demodulation`: one ordinary conv on the stored weight, no per-sample weights.

    upsample: transposed conv with stride 2, then Blur (pads chosen so H → 2H). With dilation > 1 (StyleGANEX)
    the resolution stays: [1,2,1] blur then the conv, both dilated (dilation/2) transposed convs (run as the
    ordinary convs they equal).
    downsample: Blur, then stride-2 conv. Otherwise a "same" conv with the given dilation.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        dilation: int = 1,
        blur_kernel=BLUR_KERNEL,
    ) -> None:
        super().__init__()
        if downsample and (upsample or dilation > 1):
            raise ValueError("ModulatedConv2d: downsampling combines with neither upsampling nor dilation")
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample, self.downsample = demodulate, upsample, downsample
        self.dilation = dilation
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.padding = dilation * (kernel_size // 2)
        if upsample:
            p = len(blur_kernel) - 2 - (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
            if dilation > 1:
                self.register_buffer("blur_weight", _stylegan_ex_blur())
        if downsample:
            p = len(blur_kernel) - 2 + kernel_size - 1
            self.blur = Blur(blur_kernel, ((p + 1) // 2, p // 2))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        style = self.modulation(style)
        inference = not (self.training or torch.is_grad_enabled())
        if inference and (b > 1 or x[0].numel() < self.weight.numel()):  # the shared weight
            style = style * self.scale
            out = self._conv(x * style.view(b, c, 1, 1), self.weight[0], groups=1)
            return out.mul_(demodulation(style, self.weight[0]).view(b, -1, 1, 1)) if self.demodulate else out
        weight = self.scale * self.weight * style.view(b, 1, c, 1, 1)  # (b, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        if b == 1:  # an ordinary conv; x as it is (a reshape would make a channels-last x look contiguous)
            return self._conv(x, weight[0], groups=1)
        out = self._conv(x.reshape(1, b * c, h, w), weight.flatten(0, 1), groups=b)
        return out.reshape(b, self.out_channel, *out.shape[-2:])

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        """The (transposed, blurred, strided, dilated) conv of `x` (N, groups·in, H, W) with `weight`
        (groups·out, in, k, k): one group per sample, or one for the whole batch."""
        out_c, k = self.out_channel, self.kernel_size
        if self.upsample and self.dilation > 1:
            # the official dilated transposed convs (blur, then the conv at padding `dilation`), each as the
            # ordinary conv it equals (flipped kernel, padding 2·half − the transposed padding): the conv
            # then skips the border the transposed one computes and crops
            half, n = self.dilation // 2, x.shape[1]
            x = F.conv2d(x, self.blur_weight.flip(2, 3).expand(n, 1, 3, 3), padding=2 * half, dilation=half,
                         groups=n)
            return F.conv2d(x, weight.flip(2, 3), groups=groups, dilation=half)
        if self.upsample:
            weight = weight.view(groups, out_c, -1, k, k).transpose(1, 2).reshape(-1, out_c, k, k)
            return self.blur(F.conv_transpose2d(x, weight, stride=2, groups=groups))
        if self.downsample:
            return F.conv2d(self.blur(x), weight, stride=2, groups=groups)
        return F.conv2d(x, weight, padding=self.padding, dilation=self.dilation, groups=groups)


class NoiseInjection(nn.Module):
    """Per-pixel noise scaled by a learned `weight` (1,): added ("add", StyleGAN2; noise (B,1,H,W)) or
    concatenated on the channel axis ("concat", GPEN; noise (B,C,H,W), e.g. an encoder feature). Missing noise
    is drawn fresh; a noise map of another size is average-pooled to the feature's size (StyleGANEX)."""

    def __init__(self, mode: str = "add") -> None:
        super().__init__()
        if mode not in ("add", "concat"):
            raise ValueError(f"NoiseInjection mode {mode!r}: expected 'add' or 'concat'")
        self.mode = mode
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(
        self, image: torch.Tensor, noise: torch.Tensor | None = None, inplace: bool = False
    ) -> torch.Tensor:
        """`inplace` (add mode): the noise is added into `image` (for a temporary outside autograd)."""
        b, c, h, w = image.shape
        if noise is None:
            noise = image.new_empty(b, c if self.mode == "concat" else 1, h, w).normal_()
        elif noise.shape[-2:] != (h, w):
            noise = F.adaptive_avg_pool2d(noise, (h, w))
        if self.mode == "concat":
            return torch.cat([image, self.weight * noise], 1)
        return image.add_(self.weight * noise) if inplace else image + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4×4 constant that starts synthesis, repeated over the batch of `x`."""

    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.input.expand(x.shape[0], -1, -1, -1)


class StyledConv(nn.Module):
    """ModulatedConv2d → NoiseInjection → FusedLeakyReLU (`conv`, `noise`, `activate`). Outputs out_channel
    channels, or 2·out_channel with `isconcat` (then `activate.bias` has 2·out_channel entries)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel=BLUR_KERNEL,
        demodulate: bool = True,
        isconcat: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        options = dict(demodulate=demodulate, upsample=upsample, dilation=dilation, blur_kernel=blur_kernel)
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, **options)
        self.noise = NoiseInjection("concat" if isconcat else "add")
        self.activate = FusedLeakyReLU(out_channel * (2 if isconcat else 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None):
        # without autograd the noise and the activation overwrite the conv's output: no full-size copies
        inplace = not torch.is_grad_enabled() and self.noise.mode == "add"
        return self.activate(self.noise(self.conv(x, style), noise, inplace), inplace)


class ToRGB(nn.Module):
    """1×1 modulated conv (no demodulation) to RGB + `bias` (1,3,1,1), plus the upsampled RGB `skip` of the
    previous level. With dilation > 1 (StyleGANEX) the skip is blurred at unchanged resolution instead."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel=BLUR_KERNEL,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.dilation = dilation
        if dilation > 1:
            self.register_buffer("blur_weight", _stylegan_ex_blur())

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is None:
            return out
        if self.dilation > 1:
            half, c = self.dilation // 2, skip.shape[1]
            skip = F.conv2d(skip, self.blur_weight.expand(c, 1, 3, 3), padding=half, dilation=half, groups=c)
        else:
            skip = self.upsample(skip)
        return out + skip


def mixing_noise(batch: int, dim: int, prob: float, device=None) -> list[torch.Tensor]:
    """One z code, or two (for style mixing) with probability `prob`."""
    n = 2 if prob > 0 and torch.rand(()).item() < prob else 1
    return list(torch.randn(n, batch, dim, device=device).unbind(0))


class StyleGeneratorAPI:
    """What every StyleGAN2 generator of the zoo offers (the core `Generator`, GFP-GAN's `CleanGenerator`):
    z → w (`get_latent`, `mean_latent`, `w_plus`), the synthesis network with optional CS-SFT conditions
    (`synthesize`) and the rosinality `forward`. A generator class provides `style` (the mapping),
    `style_dim`, `n_latent`, `num_layers`, `synthesis_layers()`, `first_feature(latent)` and
    `stored_noise()`."""

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int) -> torch.Tensor:
        """Average w over n random z: the truncation centre, shape (1, style_dim)."""
        z = torch.randn(n, self.style_dim, device=next(self.parameters()).device)
        return self.style(z).mean(0, keepdim=True)

    def w_plus(
        self,
        styles: list[torch.Tensor],
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
    ) -> torch.Tensor:
        """One or two codes → (B, n_latent, style_dim). z codes go through the mapping unless
        `input_is_latent`; a single (B, n_latent, style_dim) code is used as it is. Two codes mix: the first
        drives layers [0, inject_index), the second the rest (inject_index drawn in 1…n_latent−1 if None)."""
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (e.g. generator.mean_latent(4096))")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim == 3 else s.unsqueeze(1).expand(-1, self.n_latent, -1)
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()))
        first, second = (s.unsqueeze(1) for s in styles)
        n = self.n_latent
        return torch.cat([first.expand(-1, inject_index, -1), second.expand(-1, n - inject_index, -1)], 1)

    def noise_inputs(self, randomize_noise: bool = True) -> list[torch.Tensor | None]:
        """One noise input per layer: None (drawn fresh at every call) or the stored noise maps."""
        return [None] * self.num_layers if randomize_noise else self.stored_noise()

    def synthesize(
        self,
        latent: torch.Tensor,
        feature: torch.Tensor,
        noise: list[torch.Tensor | None],
        conditions: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        sft_half: bool = True,
        fusion: Sequence[Callable] | None = None,
        first_rgb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The synthesis network from the first-layer `feature` (the constant, or a feature map), one w per
        layer in `latent` (B, n_latent, style_dim) and one noise input per layer (None: random).

        `conditions`: GFP-GAN's (scale, shift) per level 8…size, applied by CS-SFT (`channel_split_sft`) to
        the output of each level's upsampling layer, before its second layer (never at 4×4).
        `fusion` (StyleGANEX's encoder skip connections): callables (feature, rgb) → (feature, rgb); the k-th
        takes the output and RGB skip of level 4·2^k (k = 0: of the first layer) before the next level's
        upsampling layer. `first_rgb` (StyleGANEX with first_layer_feature_ind ≠ 0): `feature` and
        `first_rgb` are the outputs of the first layer and its ToRGB, which are skipped."""
        first_conv, first_to_rgb, convs, to_rgbs = self.synthesis_layers()
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise inputs, got {len(noise)}")
        if conditions is not None and len(conditions) != len(to_rgbs):
            raise ValueError(
                f"expected {len(to_rgbs)} (scale, shift) conditions (levels 8…{2 ** (len(to_rgbs) + 2)}), "
                f"got {len(conditions)}"
            )
        if fusion is not None and len(fusion) > len(to_rgbs):
            raise ValueError(f"expected at most {len(to_rgbs)} fusion callables, got {len(fusion)}")
        if first_rgb is None:
            out = first_conv(feature, latent[:, 0], noise[0])
            skip = first_to_rgb(out, latent[:, 1])
        else:
            out, skip = feature, first_rgb
        for level, to_rgb in enumerate(to_rgbs):
            i = 2 * level + 1  # index of this level's first layer
            if fusion is not None and level < len(fusion):
                out, skip = fusion[level](out, skip)
            out = convs[i - 1](out, latent[:, i], noise[i])
            if conditions is not None:
                out = channel_split_sft(out, *conditions[level], sft_half=sft_half)
            out = convs[i](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip

    def forward(
        self,
        styles: list[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: list[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """→ (image (B,3,size,size) in about [-1,1], unclamped; w+ latent if `return_latents` else None)."""
        latent = self.w_plus(styles, inject_index, truncation, truncation_latent, input_is_latent)
        if noise is None:
            noise = self.noise_inputs(randomize_noise)
        image = self.synthesize(latent, self.first_feature(latent), noise)
        return image, (latent if return_latents else None)


class Generator(StyleGeneratorAPI, nn.Module):
    """StyleGAN2 generator (rosinality names): `style` mapping, `input` constant, `conv1` + `to_rgb1` at 4×4,
    then per resolution 8…size an upsampling and a plain StyledConv (`convs.2i`, `convs.2i+1`) and
    `to_rgbs.i`.

    `n_latent` = 2·log2(size) − 2 style vectors (w+), `num_layers` = 2·log2(size) − 3 noise inputs; add-noise
    generators store fixed noise maps `noises.noise_i`. `isconcat` gives GPEN's decoder, `dilation=8`
    StyleGANEX's (see the module docstring). Subclasses reuse `w_plus` and `synthesize` with their own first
    feature and noise inputs.
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        isconcat: bool = False,
        blur_kernel=BLUR_KERNEL,
        lr_mlp: float = 0.01,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.size, self.style_dim, self.isconcat, self.dilation = size, style_dim, isconcat, dilation
        self.log_size = _log_size(size)
        self.n_latent = 2 * self.log_size - 2
        self.num_layers = 2 * self.log_size - 3
        self.channels = stylegan_channels(channel_multiplier, narrow)
        m = 2 if isconcat else 1
        kw = dict(blur_kernel=blur_kernel, isconcat=isconcat)

        self.style = MappingNetwork(style_dim, n_mlp, lr_mlp)
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, dilation=dilation, **kw)
        self.to_rgb1 = ToRGB(c4 * m, style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        in_channel = c4
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2**i]
            # StyleGANEX: a level of nominal size r < 4·dilation runs at 4·dilation, dilated by the ratio
            d_up, d = max(1, 8 * dilation // 2**i), max(1, 4 * dilation // 2**i)
            up = StyledConv(in_channel * m, out_channel, 3, style_dim, True, dilation=d_up, **kw)
            self.convs.extend([up, StyledConv(out_channel * m, out_channel, 3, style_dim, dilation=d, **kw)])
            self.to_rgbs.append(ToRGB(out_channel * m, style_dim, blur_kernel=blur_kernel, dilation=d_up))
            in_channel = out_channel
        self.noises = nn.Module()
        if not isconcat:
            for i in range(self.num_layers):
                res = 2 ** ((i + 5) // 2)
                self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

    def synthesis_layers(self) -> tuple[nn.Module, nn.Module, nn.ModuleList, nn.ModuleList]:
        return self.conv1, self.to_rgb1, self.convs, self.to_rgbs

    def first_feature(self, latent: torch.Tensor) -> torch.Tensor:
        """The learned constant, one per sample of `latent`; with dilation (StyleGANEX, no first-layer
        feature given) blown up to 4·dilation."""
        feature = self.input(latent)
        if self.dilation > 1:
            feature = F.interpolate(feature, scale_factor=self.dilation, mode="nearest")
        return feature

    def stored_noise(self) -> list[torch.Tensor]:
        if self.isconcat:
            raise ValueError("a concat-noise generator stores no noise: pass `noise` or randomize_noise=True")
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]


# --- discriminator ------------------------------------------------------------------------------------------


class ConvLayer(nn.Sequential):
    """[Blur] → EqualConv2d → [FusedLeakyReLU] (keys `0`, `1`, `2`). `downsample` blurs, then convolves with
    stride 2. With `activate` the bias lives in the activation, otherwise in the conv."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel=BLUR_KERNEL,
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers = []
        if downsample:
            p = len(blur_kernel) - 2 + kernel_size - 1
            layers.append(Blur(blur_kernel, ((p + 1) // 2, p // 2)))
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        layers.append(
            EqualConv2d(in_channel, out_channel, kernel_size, stride, padding, bias=bias and not activate)
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3×3 ConvLayers (the second blur-downsamples) + a 1×1 downsampling skip without bias, ÷ √2."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel=BLUR_KERNEL) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, True, blur_kernel, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator (rosinality names): `convs` (1×1 ConvLayer from RGB, then ResBlocks
    down to 4×4), minibatch standard deviation, `final_conv`, `final_linear` → one logit per image."""

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        blur_kernel=BLUR_KERNEL,
        stddev_group: int | None = 4,
    ) -> None:
        super().__init__()
        self.size, self.stddev_group = size, stddev_group
        channels = stylegan_channels(channel_multiplier, narrow)
        convs = [ConvLayer(3, channels[size], 1)]
        for i in range(_log_size(size), 2, -1):
            convs.append(ResBlock(channels[2**i], channels[2 ** (i - 1)], blur_kernel))
        self.convs = nn.Sequential(*convs)
        c4 = channels[4]
        self.final_conv = ConvLayer(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(
            EqualLinear(c4 * 16, c4, activation="fused_lrelu"), EqualLinear(c4, 1)
        )

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """One feature map: the std over a group of samples, averaged over channels and pixels. As in
        rosinality, samples n and n + B/G share a group; G is the largest divisor of B up to `stddev_group`
        (rosinality's min(B, 4) whenever that divides B, and any batch size works), or B when `stddev_group`
        is None (GPEN's current code)."""
        b, c, h, w = x.shape
        limit = b if self.stddev_group is None else min(b, self.stddev_group)
        group = max(g for g in range(1, limit + 1) if b % g == 0)
        std = torch.sqrt(x.view(group, -1, c, h, w).var(0, unbiased=False) + 1e-8).mean([1, 2, 3])
        return std.repeat(group).view(b, 1, 1, 1).expand(b, 1, h, w)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """→ logits (B, 1); with `return_features` also the feature maps after each of `convs` and after
        `final_conv` (GPEN's feature-matching loss)."""
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"Discriminator({self.size}) got a {tuple(x.shape[-2:])} image")
        features = []
        for layer in self.convs:
            x = layer(x)
            features.append(x)
        x = self.final_conv(torch.cat([x, self.minibatch_stddev(x)], 1))
        features.append(x)
        logits = self.final_linear(x.flatten(1))
        return (logits, features) if return_features else logits
