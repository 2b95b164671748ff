"""Options of the blind degradation: `DegradationConfig` (GFP-GAN's option names and defaults) and the
GFP-GAN, GPEN and DFDNet presets (`PRESETS`, `make_config`)."""

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

Range = tuple[float, float]

KERNEL_TYPES = ("iso", "aniso")
INTERPOLATIONS = ("bilinear", "bicubic")


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
