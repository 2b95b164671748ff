"""Batched, seeded synthetic degradation for blind face restoration (GFP-GAN / GPEN / DFDNet style).

`BlindDegradation` reproduces the LQ synthesis of GFP-GAN (``gfpgan/data/ffhq_degradation_dataset.py`` with
BasicSR ``data/degradations.py``) on a whole batch at once, on the batch's device, without a Python loop over
samples:

0. optional HQ pre-processing (GPEN, DFDNet): per-channel colour shift, then gray; the LQ is made from it;
1. blur with a per-sample isotropic / anisotropic Gaussian kernel, correlated like ``cv2.filter2D``;
2. resize by 1/s, s ~ U[0.8, 8], to ``(int(H // s), int(W // s))`` like ``cv2.resize`` (no antialias);
3. Gaussian noise, sigma ~ U[0, 20] / 255 (optionally gray noise), clipped to [0, 1];
4. JPEG with integer quality ~ U{60..100}: an exact-rounding baseline 4:2:0 codec that follows libjpeg;
5. resize back to (H, W);
6. LQ-only colour: RGB shift (p 0.3), gray (p 0.01), brightness/contrast/saturation/hue jitter (p 0.3, random
   order per sample, torchvision semantics);
7. round to uint8 levels and clamp.

Per-sample low-resolution sizes differ, so steps 2-5 work on a common canvas as large as the largest LR image:
each sample's LR image sits at the top-left corner (where a JPEG encoder puts its 8x8 block grid) and its last
row and column are replicated over the rest of the canvas (as libjpeg pads partial blocks). Resampling uses
``grid_sample`` with per-sample grids built from OpenCV's pixel-centre mapping
``src = (dst + 0.5) * in / out - 0.5`` and edge replication, so bilinear/bicubic match ``cv2.resize``
INTER_LINEAR/INTER_CUBIC up to float rounding.

Every stage has a probability (default 1.0 for 1-5) and ranges; all are `DegradationConfig` fields, named as
in the GFP-GAN options where such an option exists, so a YAML file can pass them straight through. `PRESETS`
holds GFP-GAN, GPEN and DFDNet settings. The result is a deterministic function of (hq, seed): all
randomness comes from one ``torch.Generator`` on the batch's device seeded with ``seed``.
"""

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from kornia.enhance import adjust_hue as _kornia_adjust_hue

Range = tuple[float, float]

KERNEL_TYPES = ("iso", "aniso")
INTERPOLATIONS = ("bilinear", "bicubic")
CV2_GRAY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY (GFP-GAN's gray stage)
TORCHVISION_GRAY = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale (used by adjust_contrast/saturation)


# ----------------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------------


def _pair(value: Any, name: str, cast=float) -> tuple:
    pair = tuple(cast(v) for v in value)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    return pair


@dataclass(frozen=True)
class DegradationConfig:
    """All ranges and probabilities of `BlindDegradation`; defaults are GFP-GAN's (train_gfpgan_v1.yml).

    Pixel-valued amounts (shifts, noise sigma) are on the 0-255 scale, as in the official options. A range may
    be degenerate (low == high) to fix a value; a probability of 0 switches a stage off, 1 always applies it.
    """

    # 0. HQ pre-processing, applied before the LQ is made from the HQ (GPEN: gray 0.2; DFDNet: colour shift)
    gt_color_jitter_prob: float = 0.0
    gt_color_jitter_shift: float = 20.0
    gt_gray_prob: float = 0.0
    # 1. blur; kernel sizes are uniform over the odd numbers in blur_kernel_size (an int fixes the size)
    blur_prob: float = 1.0
    kernel_list: tuple[str, ...] = ("iso", "aniso")
    kernel_prob: tuple[float, ...] = (0.5, 0.5)
    blur_kernel_size: int | tuple[int, int] = 41
    blur_sigma: Range = (0.1, 10.0)
    blur_sigma_y: Range | None = None  # anisotropic sigma_y range; None: same as blur_sigma (GFP-GAN)
    rotation_range: Range = (-math.pi, math.pi)
    # 2. downsample and 5. resize back
    downsample_prob: float = 1.0
    downsample_range: Range = (0.8, 8.0)
    interpolation: str = "bilinear"  # or "bicubic" (DFDNet)
    # 3. additive Gaussian noise, sigma on the 0-255 scale
    noise_prob: float = 1.0
    noise_range: Range = (0.0, 20.0)
    noise_gray_prob: float = 0.0
    # 4. JPEG, integer quality uniform in [low, high]
    jpeg_prob: float = 1.0
    jpeg_range: tuple[int, int] = (60, 100)
    # 6. LQ-only colour stages
    color_jitter_prob: float = 0.3
    color_jitter_shift: float = 20.0
    gray_prob: float = 0.01
    gt_gray: bool = False  # GFP-GAN option: when the LQ is made gray, make the HQ gray too
    color_jitter_pt_prob: float = 0.3
    brightness: Range | None = (0.5, 1.5)
    contrast: Range | None = (0.5, 1.5)
    saturation: Range | None = (0.0, 1.5)
    hue: Range | None = (-0.1, 0.1)  # fraction of the hue circle, as torchvision's adjust_hue
    # 7. round the LQ to uint8 levels (GFP-GAN always does)
    quantize: bool = True

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        for name in [f for f in asdict(self) if f.endswith("_prob") and f != "kernel_prob"]:
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
            set_(name, float(getattr(self, name)))
        size = self.blur_kernel_size
        size = (size, size) if isinstance(size, int | float) else size
        size = _pair(size, "blur_kernel_size", int)
        if size[0] < 1 or size[0] % 2 == 0 or size[1] % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size!r}")
        set_("blur_kernel_size", size)
        kernel_list = tuple(str(k) for k in self.kernel_list)
        kernel_prob = tuple(float(p) for p in self.kernel_prob)
        if not kernel_list or set(kernel_list) - set(KERNEL_TYPES) or len(kernel_list) != len(kernel_prob):
            raise ValueError(f"kernel_list must be non-empty, from {KERNEL_TYPES}, one kernel_prob each")
        if min(kernel_prob) < 0 or sum(kernel_prob) <= 0:
            raise ValueError(f"kernel_prob must be non-negative with a positive sum, got {kernel_prob!r}")
        set_("kernel_list", kernel_list)
        set_("kernel_prob", kernel_prob)
        for name in ("blur_sigma", "rotation_range", "downsample_range", "noise_range"):
            set_(name, _pair(getattr(self, name), name))
        for name in ("blur_sigma_y", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, name) is not None:
                set_(name, _pair(getattr(self, name), name))
        set_("jpeg_range", _pair(self.jpeg_range, "jpeg_range", int))
        if self.blur_sigma[0] <= 0 or (self.blur_sigma_y is not None and self.blur_sigma_y[0] <= 0):
            raise ValueError("blur sigmas must be positive")
        if self.downsample_range[0] <= 0:
            raise ValueError("downsample_range must be positive")
        if not 1 <= self.jpeg_range[0] <= self.jpeg_range[1] <= 100:
            raise ValueError(f"jpeg_range must lie in [1, 100], got {self.jpeg_range!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")


PRESETS: dict[str, dict[str, Any]] = {
    "gfpgan": {},
    # GPEN (data_loader/dataset_face.py): GFP-GAN blur/down/noise/JPEG, no LQ colour jitter, HQ gray p 0.2
    "gpen": dict(color_jitter_prob=0.0, gray_prob=0.0, color_jitter_pt_prob=0.0, gt_gray_prob=0.2),
    # DFDNet: each stage with its own probability, isotropic Gaussian kernels of size 3..35, bicubic resizing,
    # and a colour shift on the HQ (the LQ is made from the shifted HQ). Its probability is our choice.
    "dfdnet": dict(
        gt_color_jitter_prob=0.3,
        blur_prob=0.9,
        kernel_list=("iso",),
        kernel_prob=(1.0,),
        blur_kernel_size=(3, 35),
        blur_sigma=(0.3, 2.0),
        downsample_prob=0.95,
        downsample_range=(2.0, 10.0),
        interpolation="bicubic",
        noise_prob=0.9,
        noise_range=(1.0, 10.0),
        jpeg_prob=0.6,
        jpeg_range=(40, 80),
        color_jitter_prob=0.0,
        gray_prob=0.0,
        color_jitter_pt_prob=0.0,
    ),
}


def make_config(preset: str | None = None, **overrides) -> DegradationConfig:
    """A `DegradationConfig` from a preset name (None: GFP-GAN defaults) and field overrides."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown degradation preset {preset!r}; known: {sorted(PRESETS)}")
    unknown = set(overrides) - set(DegradationConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown degradation option(s): {sorted(unknown)}")
    return replace(DegradationConfig(**PRESETS.get(preset or "gfpgan", {})), **overrides)


# ----------------------------------------------------------------------------------------------------------
# parameter sampling
# ----------------------------------------------------------------------------------------------------------


class _Sampler:
    """Draws per-sample tensors from one generator (the draw order fixes the stream, keep it stable)."""

    def __init__(self, batch: int, generator: torch.Generator, device: torch.device):
        self.batch, self.generator, self.device = batch, generator, device

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        u = torch.rand(self.batch, *shape, generator=self.generator, device=self.device)
        return low + (high - low) * u

    def bernoulli(self, p: float) -> torch.Tensor:
        return self.uniform(0.0, 1.0) < p

    def integers(self, low: int, high: int) -> torch.Tensor:
        """Uniform integers in [low, high], inclusive."""
        return torch.randint(low, high + 1, (self.batch,), generator=self.generator, device=self.device)


def sample_params(cfg: DegradationConfig, batch: int, generator: torch.Generator, device) -> dict:
    """Every random parameter of a batch. Values are drawn for every sample; ``*_applied`` masks say which
    samples a stage touches (kernel, scale, etc. of the other samples are drawn but unused)."""
    s = _Sampler(batch, generator, device)
    p: dict[str, torch.Tensor] = {}
    # 0. HQ pre-processing
    p["gt_shift_applied"] = s.bernoulli(cfg.gt_color_jitter_prob)
    p["gt_shift"] = s.uniform(-cfg.gt_color_jitter_shift, cfg.gt_color_jitter_shift, 3) / 255.0
    p["gt_gray_applied"] = s.bernoulli(cfg.gt_gray_prob)
    # 1. blur kernel
    p["blur_applied"] = s.bernoulli(cfg.blur_prob)
    iso_prob = dict(zip(cfg.kernel_list, cfg.kernel_prob, strict=True)).get("iso", 0.0) / sum(cfg.kernel_prob)
    p["kernel_iso"] = s.bernoulli(iso_prob)
    k_low, k_high = cfg.blur_kernel_size
    p["kernel_size"] = k_low + 2 * s.integers(0, (k_high - k_low) // 2)
    sigma_y_range = cfg.blur_sigma_y or cfg.blur_sigma
    p["sigma_x"] = s.uniform(*cfg.blur_sigma)
    p["sigma_y"] = torch.where(p["kernel_iso"], p["sigma_x"], s.uniform(*sigma_y_range))
    p["theta"] = torch.where(p["kernel_iso"], 0.0, s.uniform(*cfg.rotation_range))
    # 2. downsample
    p["downsample_applied"] = s.bernoulli(cfg.downsample_prob)
    p["scale"] = s.uniform(*cfg.downsample_range)
    # 3. noise
    p["noise_applied"] = s.bernoulli(cfg.noise_prob)
    p["noise_sigma"] = s.uniform(*cfg.noise_range)
    p["noise_gray"] = s.bernoulli(cfg.noise_gray_prob)
    # 4. JPEG
    p["jpeg_applied"] = s.bernoulli(cfg.jpeg_prob)
    p["quality"] = s.integers(*cfg.jpeg_range)
    # 6. LQ colour
    p["shift_applied"] = s.bernoulli(cfg.color_jitter_prob)
    p["shift"] = s.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3) / 255.0
    p["gray_applied"] = s.bernoulli(cfg.gray_prob)
    p["jitter_applied"] = s.bernoulli(cfg.color_jitter_pt_prob)
    p["jitter_order"] = torch.argsort(s.uniform(0.0, 1.0, 4), dim=1)  # a random permutation per sample
    for name in ("brightness", "contrast", "saturation", "hue"):
        p[name] = s.uniform(*(getattr(cfg, name) or (0.0, 0.0)))
    return p


# ----------------------------------------------------------------------------------------------------------
# stages (images are (B, 3, H, W) float in [0, 1] unless said otherwise)
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.tensor(values)`` made once per device and dtype (never modify the result in place)."""
    return torch.tensor(values, device=device, dtype=dtype)


def _apply(applied: torch.Tensor, stage, x: torch.Tensor, *args: torch.Tensor, always: bool = False):
    """``stage(x, *args)`` on the samples where ``applied`` (B,), ``x`` elsewhere; args are per-sample.

    Only the selected samples are gathered, computed and copied back into ``x`` in place (pass a tensor the
    caller owns); no sample selected skips the stage and returns ``x``; every sample selected (or ``always``:
    the stage probability is 1) returns the stage's output for the whole batch."""
    if always:
        return stage(x, *args)
    index = torch.nonzero(applied).squeeze(1)
    if not index.numel():
        return x
    if index.numel() == x.shape[0]:
        return stage(x, *args)
    return x.index_copy_(0, index, stage(x[index], *(a[index] for a in args)))


def shift_colors(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """GFP-GAN `color_jitter`: add a per-sample RGB offset (B, 3), clip to [0, 1]."""
    return (x + shift[:, :, None, None]).clamp_(0.0, 1.0)


def to_gray(x: torch.Tensor, weights=CV2_GRAY) -> torch.Tensor:
    """Luma as 3 equal channels (cv2.COLOR_RGB2GRAY weights by default)."""
    w = _constant(weights, x.device, x.dtype)
    return (x * w[:, None, None]).sum(dim=-3, keepdim=True).expand_as(x).contiguous()


def gaussian_kernels(
    sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, size: torch.Tensor, max_size: int
) -> torch.Tensor:
    """(B, max_size, max_size) bivariate Gaussian kernels as BasicSR's `bivariate_Gaussian`: covariance
    R(theta) diag(sx^2, sy^2) R(theta)^T on the integer grid, zero outside each sample's size x size support,
    normalised to sum 1. Row index is y, column index is x (BasicSR's mesh_grid)."""
    r = max_size // 2
    ax = torch.arange(-r, r + 1, device=sigma_x.device, dtype=torch.float32)
    y, x = ax[None, :, None], ax[None, None, :]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    inv_x, inv_y = 1.0 / sigma_x[:, None, None] ** 2, 1.0 / sigma_y[:, None, None] ** 2
    # inverse covariance R diag(1/sx^2, 1/sy^2) R^T
    a = cos**2 * inv_x + sin**2 * inv_y
    b = cos * sin * (inv_x - inv_y)
    d = sin**2 * inv_x + cos**2 * inv_y
    kernel = torch.exp(-0.5 * (a * x**2 + 2 * b * x * y + d * y**2))
    half = (size // 2)[:, None, None]
    kernel = kernel * ((x.abs() <= half) & (y.abs() <= half))
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def _reflect101_index(n: int, pad: int, device) -> torch.Tensor:
    """Source indices of a reflect-101 padded axis (cv2.BORDER_REFLECT_101), for any pad, even pad >= n."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def reflect101_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes like cv2.BORDER_REFLECT_101; pads as large as the image (where F.pad's "reflect"
    refuses) repeat the reflection as OpenCV does."""
    if pad < min(x.shape[-2:]):
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = _reflect101_index(x.shape[-2], pad, x.device)
    cols = _reflect101_index(x.shape[-1], pad, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _fft_size(n: int) -> int:
    """Smallest 7-smooth integer >= n (fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _fft_input(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``reflect101_pad(x, pad)`` followed by zeros at the bottom and right up to fast FFT sizes, written
    into one buffer (the copies of the image and its reflected borders are exact)."""
    h, w = x.shape[-2:]
    hp, wp = h + 2 * pad, w + 2 * pad
    size = (_fft_size(hp), _fft_size(wp))
    if pad >= min(h, w):  # reflections repeat: the general (slower) path
        return F.pad(reflect101_pad(x, pad), (0, size[1] - wp, 0, size[0] - hp))
    out = x.new_empty(*x.shape[:-2], *size)
    out[..., pad : pad + h, pad : pad + w] = x
    if pad:  # reflect-101: rows first, then all padded rows' columns (which fills the corners)
        out[..., :pad, pad : pad + w] = x[..., 1 : pad + 1, :].flip(-2)
        out[..., pad + h : hp, pad : pad + w] = x[..., h - 1 - pad : h - 1, :].flip(-2)
        out[..., :hp, :pad] = out[..., :hp, pad + 1 : 2 * pad + 1].flip(-1)
        out[..., :hp, pad + w : wp] = out[..., :hp, w - 1 : w + pad - 1].flip(-1)
    out[..., hp:, :] = 0.0
    out[..., :hp, wp:] = 0.0
    return out


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each sample with its own (k, k) kernel, reflect-101 border, like cv2.filter2D.

    Same result as ``kornia.filters.filter2d(reflect101_pad(x, k // 2), kernels, padding="valid")`` up to
    float rounding, computed by FFT (as OpenCV does for large kernels): 2-8x faster on CPU for 41x41 kernels,
    and not slowed down by denormal products of the tiny tails of narrow Gaussians."""
    k = kernels.shape[-1]
    # zero padding beyond the reflect-padded (height, width) up to a fast FFT size cannot wrap into the crop
    padded = _fft_input(x, k // 2)
    height, width = x.shape[-2] + k - 1, x.shape[-1] + k - 1
    size = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded).mul_(torch.fft.rfft2(kernels.flip(-2, -1), s=size)[:, None])
    # irfft2 in its two steps (as torch does it on CPU), the second only on the rows that are kept
    rows = torch.fft.ifft(spectrum, dim=-2)[..., k - 1 : height, :]
    return torch.fft.irfft(rows, n=size[1], dim=-1)[..., k - 1 : width]


def lr_sizes(height: int, width: int, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GFP-GAN's low-resolution size (int(h // s), int(w // s)), at least 1 pixel."""
    scale = scale.double()
    return (height / scale).floor().long().clamp(min=1), (width / scale).floor().long().clamp(min=1)


def _axis_coords(n_out: int, valid: torch.Tensor, src: torch.Tensor, n_in: int) -> torch.Tensor:
    """(B, n_out) grid_sample coordinates along one axis.

    Output pixel j (clamped to valid - 1, which replicates the last valid pixel) reads the source pixel
    ``(j + 0.5) * src / valid - 0.5`` (OpenCV's mapping from a ``src``-pixel image to a ``valid``-pixel one),
    normalised for an input tensor of n_in pixels (align_corners=False)."""
    j = torch.arange(n_out, device=valid.device, dtype=torch.float64)
    j = torch.minimum(j[None], (valid - 1).double()[:, None])
    pos = (j + 0.5) * (src.double() / valid.double())[:, None] - 0.5
    return ((2.0 * pos + 1.0) / n_in - 1.0).float()


def _resample(x, out_hw, valid_hw, src_hw, mode: str) -> torch.Tensor:
    gy = _axis_coords(out_hw[0], valid_hw[0], src_hw[0], x.shape[-2])
    gx = _axis_coords(out_hw[1], valid_hw[1], src_hw[1], x.shape[-1])
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def resize_to_canvas(x: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor, mode: str) -> torch.Tensor:
    """Resize sample b to (lr_h[b], lr_w[b]) like cv2.resize (no antialias), at the top-left of a common
    (max lr_h, max lr_w) canvas whose remainder replicates the sample's last row / column."""
    height, width = x.shape[-2:]
    canvas_hw = (int(lr_h.max()), int(lr_w.max()))
    full = (torch.full_like(lr_h, height), torch.full_like(lr_w, width))
    return _resample(x, canvas_hw, (lr_h, lr_w), full, mode)


def resize_from_canvas(
    canvas: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor, height: int, width: int, mode: str
) -> torch.Tensor:
    """Resize each sample's (lr_h, lr_w) top-left region of the canvas to (height, width) like cv2.resize.

    Exact replicate-border semantics need the canvas to replicate each sample's edge (`replicate_outside`)."""
    full = (torch.full_like(lr_h, height), torch.full_like(lr_w, width))
    return _resample(canvas, (height, width), full, (lr_h, lr_w), mode)


def replicate_outside(canvas: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor) -> torch.Tensor:
    """Overwrite each sample's canvas outside its (lr_h, lr_w) region with its last row / column."""
    b, c, h, w = canvas.shape
    rows = torch.minimum(torch.arange(h, device=canvas.device)[None], lr_h[:, None] - 1)
    cols = torch.minimum(torch.arange(w, device=canvas.device)[None], lr_w[:, None] - 1)
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return canvas.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)  # one gather for rows and columns


def gaussian_noise(x: torch.Tensor, gray: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) fields shaped like x, one per pixel and channel (one field for all channels where ``gray``).
    Drawn for the whole batch (the generator stream does not depend on which samples get noise)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if gray is not None:
        gray_noise = torch.randn(x[:, :1].shape, generator=generator, device=x.device, dtype=x.dtype)
        index = torch.nonzero(gray).squeeze(1)
        noise.index_copy_(0, index, gray_noise[index].expand(-1, x.shape[1], -1, -1))
    return noise


def add_noise(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x + noise * sigma / 255 with per-sample sigma (B,) on the 0-255 scale, clipped to [0, 1]; the result
    is written over ``noise``."""
    return noise.mul_((sigma / 255.0)[:, None, None, None]).add_(x).clamp_(0.0, 1.0)


def add_gaussian_noise(
    x: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """BasicSR `add_gaussian_noise`: x + N(0, sigma/255) per pixel and channel (one field for all channels
    where ``gray``), clipped to [0, 1]."""
    return add_noise(x, gaussian_noise(x, gray, generator), sigma)


# JPEG: baseline sequential, 4:2:0, standard (Annex K) tables scaled as libjpeg's jpeg_set_quality
_JPEG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)  # fmt: skip
_JPEG_CHROMA = (
    (17, 18, 24, 47, 99, 99, 99, 99), (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99), (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4  # fmt: skip
_RGB_TO_YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def jpeg_tables(quality: torch.Tensor, base) -> torch.Tensor:
    """(B, 8, 8) quantisation tables for integer qualities, as libjpeg (force_baseline: entries 1..255)."""
    q = quality.clamp(1, 100).double()
    scale = torch.where(q < 50, torch.floor(5000.0 / q), 200.0 - 2.0 * q)
    table = _constant(base, quality.device, torch.float64)
    return torch.floor((table * scale[:, None, None] + 50.0) / 100.0).clamp(1, 255).float()


@lru_cache(maxsize=8)
def _dct_matrix(device: torch.device) -> torch.Tensor:
    i = torch.arange(8, device=device, dtype=torch.float64)
    m = torch.cos((2 * i[None, :] + 1) * i[:, None] * math.pi / 16) / 2
    m[0] /= math.sqrt(2.0)
    return m.float()  # orthonormal: coefficients = M @ block @ M.T


def _jpeg_roundtrip_plane(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Level-shift, 8x8 DCT, quantise with per-sample tables (B, 8, 8), dequantise, IDCT, round to 0..255.
    x: (B, C, H, W) with H, W multiples of 8."""
    b, c, h, w = x.shape
    m = _dct_matrix(x.device)
    blocks = (x - 128.0).view(b, c, h // 8, 8, w // 8, 8).transpose(3, 4)  # (B, C, h/8, w/8, 8, 8)
    q = table[:, None, None, None]
    coef = (m @ blocks @ m.T).div_(q).round_().mul_(q)
    out = (m.T @ coef @ m).transpose(3, 4).reshape(b, c, h, w) + 128.0
    return out.round_().clamp_(0.0, 255.0)


def _color_matrix(x: torch.Tensor, matrix) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _constant(matrix, x.device, x.dtype), x)


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG encode + decode with per-sample integer quality (B,), like cv2.imencode/imdecode (libjpeg
    defaults: 4:2:0, standard tables) but with exact rounding and float DCT. Input is clipped and rounded to
    uint8 levels first (as OpenCV converts BasicSR's float image); output is on uint8 levels.

    Sizes are padded to a multiple of 16 by edge replication, as libjpeg does, then cropped back.

    Not kornia's jpeg_codec_differentiable: its soft rounding (round(x) + (x - round(x))^3) and antialiased
    chroma filter leave it 1.3-2.5 levels (mean abs) from libjpeg's output and ~10 % weaker in artefact
    strength; this codec is 0.4-0.9 levels from libjpeg and matches its error to ~1 %."""
    height, width = x.shape[-2:]
    x = x.clamp(0.0, 1.0).mul_(255.0).round_()
    x = F.pad(x, (0, -width % 16, 0, -height % 16), mode="replicate")
    offset = _constant((0.0, 128.0, 128.0), x.device, x.dtype)[:, None, None]
    ycc = _color_matrix(x, _RGB_TO_YCC).add_(offset).round_().clamp_(0.0, 255.0)
    luma = _jpeg_roundtrip_plane(ycc[:, :1], jpeg_tables(quality, _JPEG_LUMA))
    chroma = F.avg_pool2d(ycc[:, 1:], 2).round_()  # libjpeg h2v2 box downsampling
    chroma = _jpeg_roundtrip_plane(chroma, jpeg_tables(quality, _JPEG_CHROMA))
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)  # "fancy" upsampling
    ycc = torch.cat([luma, chroma.sub_(128.0)], dim=1)
    rgb = _color_matrix(ycc, _YCC_TO_RGB).round_().clamp_(0.0, 255.0)
    return rgb[..., :height, :width] / 255.0


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_brightness: x * factor, clipped."""
    return (x * factor[:, None, None, None]).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_contrast: blend with the mean gray level of each image, clipped."""
    mean = to_gray(x, TORCHVISION_GRAY)[:, :1].mean(dim=(-2, -1), keepdim=True)
    f = factor[:, None, None, None]
    return (f * x + (1 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_saturation: blend with the gray image, clipped."""
    f = factor[:, None, None, None]
    return (f * x + (1 - f) * to_gray(x, TORCHVISION_GRAY)).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_hue: rotate the HSV hue by factor (a fraction of the circle, in [-0.5, 0.5])."""
    return _kornia_adjust_hue(x, factor * (2 * math.pi)).clamp(0.0, 1.0)


JITTER_OPS = (("brightness", adjust_brightness), ("contrast", adjust_contrast),
              ("saturation", adjust_saturation), ("hue", adjust_hue))  # fmt: skip


def color_jitter_pt(x: torch.Tensor, applied: torch.Tensor, order: torch.Tensor, params: dict, cfg):
    """GFP-GAN `color_jitter_pt`: brightness, contrast, saturation and hue adjustments in a random order per
    sample (order: (B, 4) permutations of JITTER_OPS indices). Each (position, op) pair runs only on the
    samples that have that op at that position. x is updated in place."""
    jittered = torch.nonzero(applied).squeeze(1)
    if not jittered.numel():
        return x
    sub, order = x[jittered], order[jittered]
    for position in range(len(JITTER_OPS)):
        for index, (name, op) in enumerate(JITTER_OPS):
            if getattr(cfg, name) is None:
                continue
            samples = torch.nonzero(order[:, position] == index).squeeze(1)
            if samples.numel():
                sub[samples] = op(sub[samples], params[name][jittered][samples])
    return x.index_copy_(0, jittered, sub)


def quantize(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Round to uint8 levels, clamp to [0, 255]; the result is the level count (0..255) as float.
    ``inplace``: overwrite x with it."""
    x = x.mul_(255.0) if inplace else x * 255.0
    return x.round_().clamp_(0.0, 255.0)


# ----------------------------------------------------------------------------------------------------------
# the module
# ----------------------------------------------------------------------------------------------------------


class BlindDegradation(torch.nn.Module):
    """Synthesise LQ images from a batch of HQ images: ``out = deg(hq, seed)``.

    Args:
        preset: None or "gfpgan" (GFP-GAN defaults), "gpen" or "dfdnet"; see `PRESETS`.
        **overrides: any `DegradationConfig` field (probabilities, ranges, kernel options, interpolation).

    Call with hq (B, 3, H, W) float in [-1, 1] and an int seed. Returns ``dict(lq=..., hq=..., params=...)``:
    lq (B, 3, H, W) in [-1, 1] on uint8 levels (k / 127.5 - 1); hq, the input or, where an HQ stage changed
    it (gt_gray_prob, gt_color_jitter_prob, gt_gray), the changed HQ; params, the per-sample tensors of
    `sample_params` plus the low-resolution sizes ``lr_h``, ``lr_w``. Same (hq, seed) gives the same result.
    """

    def __init__(self, preset: str | None = None, **overrides):
        super().__init__()
        self.config = make_config(preset, **overrides)

    def extra_repr(self) -> str:
        return repr(self.config)

    @torch.no_grad()
    def forward(self, hq: torch.Tensor, seed: int) -> dict:
        if hq.dim() != 4 or hq.shape[1] != 3 or not hq.is_floating_point():
            raise ValueError(f"hq must be a float (B, 3, H, W) batch, got {tuple(hq.shape)} {hq.dtype}")
        cfg = self.config
        batch, _, height, width = hq.shape
        device = hq.device
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
        p = sample_params(cfg, batch, generator, device)

        # 0. HQ pre-processing; x is a fresh tensor, which the stages below may overwrite in place
        x = (hq.float() + 1.0).div_(2.0)
        hq_changed = p["gt_shift_applied"] | p["gt_gray_applied"]
        if cfg.gt_color_jitter_prob > 0:
            x = _apply(p["gt_shift_applied"], shift_colors, x, p["gt_shift"])
        if cfg.gt_gray_prob > 0:
            x = _apply(p["gt_gray_applied"], to_gray, x)
        # keep the HQ only where an HQ stage can change it
        hq_may_change = (
            cfg.gt_color_jitter_prob > 0 or cfg.gt_gray_prob > 0 or cfg.gt_gray and cfg.gray_prob > 0
        )
        hq01 = x.clone() if hq_may_change else None
        # 1. blur
        if cfg.blur_prob > 0:
            kernels = gaussian_kernels(
                p["sigma_x"], p["sigma_y"], p["theta"], p["kernel_size"], cfg.blur_kernel_size[1]
            )
            x = _apply(p["blur_applied"], blur, x, kernels, always=cfg.blur_prob == 1)
        # 2. downsample onto a common canvas
        resizing = cfg.downsample_prob > 0
        if resizing:
            scale = torch.where(p["downsample_applied"], p["scale"], 1.0)
            lr_h, lr_w = lr_sizes(height, width, scale)
            x = resize_to_canvas(x, lr_h, lr_w, cfg.interpolation)
        else:
            lr_h = torch.full((batch,), height, device=device)
            lr_w = torch.full((batch,), width, device=device)
        p["lr_h"], p["lr_w"] = lr_h, lr_w
        # 3. noise (drawn for every sample, added where applied)
        if cfg.noise_prob > 0:
            noise = gaussian_noise(x, p["noise_gray"] if cfg.noise_gray_prob > 0 else None, generator)
            x = _apply(p["noise_applied"], add_noise, x, noise, p["noise_sigma"], always=cfg.noise_prob == 1)
            if resizing:
                x = replicate_outside(x, lr_h, lr_w)
        # 4. JPEG
        if cfg.jpeg_prob > 0:
            x = _apply(p["jpeg_applied"], jpeg_compress, x, p["quality"], always=cfg.jpeg_prob == 1)
            if resizing:
                x = replicate_outside(x, lr_h, lr_w)
        # 5. back to full size
        if resizing:
            x = resize_from_canvas(x, lr_h, lr_w, height, width, cfg.interpolation)
        # 6. LQ-only colour
        if cfg.color_jitter_prob > 0:
            x = _apply(p["shift_applied"], shift_colors, x, p["shift"])
        if cfg.gray_prob > 0:
            x = _apply(p["gray_applied"], to_gray, x)
            if cfg.gt_gray:
                hq01 = _apply(p["gray_applied"], to_gray, hq01)
                hq_changed = hq_changed | p["gray_applied"]
        if cfg.color_jitter_pt_prob > 0:
            x = color_jitter_pt(x, p["jitter_applied"], p["jitter_order"], p, cfg)
        # 7. output
        lq = quantize(x, inplace=True).div_(127.5).sub_(1.0) if cfg.quantize else x.mul_(2.0).sub_(1.0)
        hq_out = hq
        if hq_may_change:
            changed = torch.nonzero(hq_changed).squeeze(1)
            if changed.numel():
                hq_out = hq.index_copy(0, changed, (hq01[changed] * 2.0 - 1.0).to(hq.dtype))
        return dict(lq=lq.to(hq.dtype), hq=hq_out, params=p)
