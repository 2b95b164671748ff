"""The StyleGANEX encoder E (Yang et al., "StyleGANEX: StyleGAN-Based Manipulation Beyond Cropped Aligned
Faces", ICCV 2023; official `GradualStyleEncoder(50, 'ir_se')` in models/encoders/psp_encoders.py).

E is a pSp encoder that projects a normal-FoV face image x (any H×W, sides multiples of 8) into the joint
W+ × F space of the StyleGANEX generator: `E(x1, x2, l)` returns the first-layer feature f of x1 (E_F), the
w+ codes of x2 (E_w; x2 = x1 when not given) and, for l > 0, the encoder features skipped to the first l
shallow layers of G.

Key names are the official checkpoint's `encoder.*` keys without the prefix: `input_layer.{0,1,2}`,
`body.{0..23}.res_layer/shortcut_layer` (the IR-SE50 of arcface.py), `styles.{0..17}.convs.{0,2,…}`,
`styles.N.linear`, `latlayer1`, `latlayer2`, `featlayer`, `skiplayer`, `fusion.{i}.transform.0`,
`fusion.{i}.fusion_out` (+ `fusion_skip`, `linear`, `norm.style`, `conv` where enabled) and, for the
sketch / parsing-map tasks (`label_nc` > 0), the translation network T `input_label_layer.model.{0..12}`.

Sketch- and mask-to-face (`label_nc` = 1 for a sketch, 19 for a one-hot parsing map; official input_nc):
T maps the label map y to a feature as wide as `input_layer`'s (64) at y's size, which enters the body in
place of `input_layer`'s (c256 is then T's output). `input_layer` stays: an RGB image (3 channels) still goes
through it, as the official encoder decides per input by its channel count; that is how the official coach
takes the w+ of the ground-truth face for the latent mask (`w_plus(body_features(face))`). Mixing the two
w+ (official `latent_mask`, codes 8–17) happens outside E, after `latent_avg` is added.

Body features (official names, after a 256 px input; sizes relative to x, widths at narrow 1):

| name | taken after | channels | size |
|---|---|---|---|
| c256 | input_layer | 64 | 1 |
| c128 | body unit 2 | 64 | 1/2 |
| c1 | body unit 6 | 128 | 1/4 |
| c21, c22, c2 | body units 10, 15, 20 | 256 | 1/8 |
| c3 | body unit 23 | 512 | 1/16 |

- **w+** (n_styles = 2·log2(size) − 2 codes; 18 for a 1024 generator): an FPN, p2 = up(c3) + latlayer1(c2),
  p1 = up(p2) + latlayer2(c1) (bilinear, align_corners=True, to the lateral's size, so odd sizes work); codes
  0–2 from c3, 3–6 from p2, the rest from p1, each by a `GradualStyleBlock` ending in GLOBAL average pooling
  (any H×W). `latent_avg` is NOT added here: the caller adds it (official `start_from_latent_avg`; the
  checkpoint keeps it at its top level, outside `encoder.*`).
- **f** = `featlayer` (1×1, 768 → 512) of cat(c21, c22, c2), at 1/8 of x, so a 1024 generator outputs 4·|x|.
  `f_rgb` = `skiplayer` (1×1, 768 → 3) of the same concatenation: the ToRGB skip the decoder starts from only
  when f enters after its first layer (official `first_layer_feature_ind` ≠ 0; 0, the default, ignores it).
- **Skips** (`use_skip`, `skip_max_layer` = n ≤ 7 fusion levels): the paper's l counts the shallow layers of
  G that receive encoder features; level j (0-based) feeds the two convs of w+ codes 2j+1, 2j+2, so l = 2n − 1
  (l = 7 for super-resolution ↔ skip_max_layer 4; l = 13 for toonification ↔ 7). `forward` returns
  `skips[j]` for j < (l + 1) // 2, and `fusion[j]` fuses it into the decoder as follows (rosinality
  `Generator.forward`: `out, skip = fusion[j](out, skips[j], skip)` right before `convs[2j]`, `convs[2j+1]`,
  `to_rgbs[j]`; decoder widths of config-f, channel multiplier 2):

| j | skips[j] | enc ch | size vs x | decoder `out` fused (resolution level) | dec ch |
|---|---|---|---|---|---|
| 0 | c2 | 256 | 1/8 | conv1's output (level 4) | 512 |
| 1 | c2 | 256 | 1/8 | level 8 output (dilated: still 1/8 of x) | 512 |
| 2 | c22 | 256 | 1/8 | level 16 output (1/8) | 512 |
| 3 | c21 | 256 | 1/8 | level 32 output (1/8) | 512 |
| 4 | c1 | 128 | 1/4 | level 64 output | 512 |
| 5 | c128 | 64 | 1/2 | level 128 output | 256 |
| 6 | c256 | 64 | 1 | level 256 output | 128 |

  `skip` there is the running ToRGB image at the same size as `out`.

`narrow` scales every encoder width (≥ 0.25, so the SE units keep a channel), `style_dim` the w+ width and
`decoder_channels` (the generator's `channels`, default config-f scaled by `narrow`) the widths of f and of
the fusion outputs; at the defaults every key and shape is the official one.
"""

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.models.components.arcface import IRSE50_STAGES, irse_body, irse_input_layer
from facezoo.models.components.stylegan2 import EqualLinear, stylegan_channels
from facezoo.utils.errors import ConfigError

BODY_TAPS = {2: "c128", 6: "c1", 10: "c21", 15: "c22", 20: "c2", 23: "c3"}  # body unit → feature name
SKIP_SOURCES = ("c2", "c2", "c22", "c21", "c1", "c128", "c256")  # the feature skipped to fusion level j
SKIP_LEVELS = (4, 8, 16, 32, 64, 128, 256)  # the decoder resolution level whose output fusion j fuses
COARSE, MIDDLE = 3, 7  # codes [0, 3) from c3, [3, 7) from p2, [7, n_styles) from p1
STYLE_CONVS = (4, 5, 6)  # stride-2 convs of a coarse / middle / fine GradualStyleBlock (pSp: log2 16, 32, 64)


class GradualStyleBlock(nn.Module):
    """pSp's map from a feature map to one w code: `n_convs` × (conv3×3 stride 2 + LeakyReLU 0.01) →
    global average (or max) pooling → EqualLinear (`convs.{0,2,…}`, `linear`)."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int, max_pooling: bool = False) -> None:
        super().__init__()
        layers = []
        for k in range(n_convs):
            layers += [
                nn.Conv2d(in_channels if k == 0 else out_channels, out_channels, 3, 2, 1),
                nn.LeakyReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels)
        self.max_pooling = max_pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        x = F.adaptive_max_pool2d(x, 1) if self.max_pooling else F.adaptive_avg_pool2d(x, 1)
        return self.linear(x.flatten(1))


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm (no affine) modulated by a label: `style` (Linear label_dim → 2C; bias init γ = 1, β = 0)
    gives γ, β."""

    def __init__(self, channels: int, label_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.style = nn.Linear(label_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels].fill_(1.0)
            self.style.bias[channels:].zero_()

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(label)[..., None, None].chunk(2, dim=1)
        return gamma * self.norm(x) + beta


class FusionLayer(nn.Module):
    """Fuses an encoder feature into a decoder feature of G (official `FusionLayer`).

    `transform` (conv3×3 enc → dec + LeakyReLU 0.01) maps the encoder feature e; `fusion_out` (conv3×3 2C → C
    on cat(decoder feature, e)) starts ≈ identity on the decoder feature (weights × 0.01 + 1 at the centre tap
    of its own channel), so an untrained fusion leaves G's output as it was. Options:
    - `use_skip_torgb`: `fusion_skip` (conv3×3 3 + C → 3, ≈ identity on the ToRGB image) also fuses e into
      the running ToRGB skip.
    - `use_att` > 0 (video editing): e is first gated by a mask
      m = tanh(relu(`conv`(AdaIN(cat(out, |out − e|), `linear`(v))))) predicted from the editing vector v by
      an MLP of `use_att` + 1 layers (LeakyReLU 0.2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        use_skip_torgb: bool = False,
        use_att: int = 0,
        style_dim: int = 512,
    ) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.LeakyReLU())
        self.fusion_out = _near_identity_conv(out_channels, out_channels)
        self.fusion_skip = _near_identity_conv(3, out_channels) if use_skip_torgb else None
        self.use_att = use_att
        if use_att:
            layers = [nn.Linear(style_dim, out_channels)]
            for _ in range(use_att):
                layers += [nn.LeakyReLU(0.2), nn.Linear(out_channels, out_channels)]
            self.linear = nn.Sequential(*layers, nn.LeakyReLU(0.2))
            self.norm = AdaptiveInstanceNorm(2 * out_channels, out_channels)
            self.conv = nn.Conv2d(2 * out_channels, 1, 3, 1, 1)

    def forward(
        self,
        out: torch.Tensor,
        feat: torch.Tensor,
        skip: torch.Tensor | None = None,
        editing_w: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(decoder feature (B, C, h, w), encoder feature (B, C_enc, h, w), ToRGB skip (B, 3, h, w) or None,
        editing vector (B, style_dim) or None) → (fused decoder feature, the skip: fused when `fusion_skip`
        exists, else returned as given)."""
        x = self.transform(feat)
        if self.use_att and editing_w is not None:
            label = self.linear(editing_w)
            mask = F.relu(self.conv(self.norm(torch.cat((out, (out - x).abs()), 1), label))).tanh()
            x = x * mask
        out = self.fusion_out(torch.cat((out, x), 1))
        if self.fusion_skip is not None:
            if skip is None:
                raise ValueError("FusionLayer with fusion_skip (use_skip_torgb) needs the ToRGB skip image")
            skip = self.fusion_skip(torch.cat((skip, x), 1))
        return out, skip


class TranslationResBlock(nn.Module):
    """Residual block of T: LeakyReLU(x + conv3×3(LeakyReLU(conv3×3(x)))) (`conv_block.{0,2}`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(), nn.Conv2d(channels, channels, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.conv_block(x))


class TranslationNetwork(nn.Module):
    """T, the trainable light-weight translation network of sketch / mask-to-face (official
    `ResnetGenerator`): maps a label map (B, label_nc, H, W) into the domain of E's stem output,
    (B, out_channels, H, W), H and W multiples of 4. `model.{0..12}`: two stride-2 conv3×3 to 16 channels,
    two residual blocks, two stride-2 transposed conv3×3 back to full size (LeakyReLU 0.01 after each conv),
    then conv3×3 (no bias) → BatchNorm → PReLU, the layout of IR-SE50's `input_layer`."""

    WIDTH = 16

    def __init__(self, label_nc: int, out_channels: int = 64) -> None:
        super().__init__()
        w = self.WIDTH
        layers: list[nn.Module] = [nn.Conv2d(label_nc, w, 3, 2, 1), nn.LeakyReLU()]
        layers += [nn.Conv2d(w, w, 3, 2, 1), nn.LeakyReLU()]
        layers += [TranslationResBlock(w), TranslationResBlock(w)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(w, w, 3, 2, 1, output_padding=1), nn.LeakyReLU()]
        layers += [nn.Conv2d(w, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels)]
        layers.append(nn.PReLU(out_channels))
        self.model = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.model(y)


def _near_identity_conv(channels: int, extra: int) -> nn.Conv2d:
    """conv3×3 (channels + extra → channels), PyTorch's init × 0.01 plus the identity on the first `channels`
    inputs at the centre tap."""
    conv = nn.Conv2d(channels + extra, channels, 3, 1, 1)
    with torch.no_grad():
        conv.weight.mul_(0.01)
        conv.weight[:, :channels, 1, 1] += torch.eye(channels, device=conv.weight.device)
    return conv


class EncoderOutput(NamedTuple):
    """w_plus (B, n_styles, style_dim) without latent_avg; f (B, C_4, H/8, W/8); f_rgb (B, 3, H/8, W/8);
    skips: the features for fusion levels 0 … (l + 1) // 2 − 1 (see the module docstring)."""

    w_plus: torch.Tensor
    f: torch.Tensor
    f_rgb: torch.Tensor
    skips: tuple[torch.Tensor, ...]


def crop_face(x: torch.Tensor, size: int = 256) -> torch.Tensor:
    """The aligned face the w+ codes are taken from (official coach `crop_face`): the centre size × size of
    an aligned FFHQ image (256 of 320 in the official data; scale `size` with the image). Each side longer
    than `size` loses (side − size) // 2 pixels at both ends; shorter sides are kept."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : h - top, left : w - left]


class StyleGANEXEncoder(nn.Module):
    """E(x1, x2=None, l=None) → `EncoderOutput` (see the module docstring for what goes where).

    Args:
        size: output size of the generator (sets n_styles = 2·log2(size) − 2; 18 for 1024).
        style_dim: width of the w codes (512).
        narrow: scale of every encoder width (IR-SE50 body, FPN, style-block inputs); 64·narrow ≥ 16.
        decoder_channels: the generator's width per resolution level (its `channels`); default config-f
            (`stylegan_channels(2, narrow)`). f has decoder_channels[4] channels; fusion j outputs
            decoder_channels[SKIP_LEVELS[j]].
        skip_max_layer: number of fusion levels (0: no `fusion`, official use_skip off; at most 7 and
            log2(size) − 2).
        use_skip_torgb, use_att: the options of every `FusionLayer`.
        max_pooling: global max instead of average pooling in the style blocks.
        label_nc: 0 for RGB input only; else the channels of the label maps T translates (1: sketch,
            19: one-hot parsing map; not 3, which means RGB). RGB images are accepted either way.
    """

    def __init__(
        self,
        size: int = 1024,
        style_dim: int = 512,
        narrow: float = 1.0,
        decoder_channels: Mapping[int, int] | None = None,
        skip_max_layer: int = 0,
        use_skip_torgb: bool = False,
        use_att: int = 0,
        max_pooling: bool = False,
        label_nc: int = 0,
    ) -> None:
        super().__init__()
        if label_nc < 0 or label_nc == 3:
            raise ConfigError(
                "StyleGANEX encoder label_nc: expected 0 (RGB input) or the channels of a label map other "
                f"than 3 (1: sketch, 19: parsing map), got {label_nc}"
            )
        if size < 8 or size & (size - 1):
            raise ConfigError(
                f"StyleGANEX encoder size: expected the generator size, a power of two ≥ 8, got {size}"
            )
        stem = 64 * narrow
        if stem != int(stem) or stem < 16:
            raise ConfigError(
                f"StyleGANEX encoder narrow: 64·narrow must be an integer ≥ 16, got narrow={narrow}"
            )
        if not 0 <= skip_max_layer <= min(len(SKIP_SOURCES), int(math.log2(size)) - 2):
            raise ConfigError(
                f"StyleGANEX encoder skip_max_layer: expected 0..{min(7, int(math.log2(size)) - 2)} for a "
                f"{size} px generator, got {skip_max_layer}"
            )
        dec = dict(decoder_channels) if decoder_channels is not None else stylegan_channels(2, narrow)
        stages = tuple((int(i * narrow), int(d * narrow), n) for i, d, n in IRSE50_STAGES)
        width = {"c256": stages[0][0], "c128": stages[0][1], "c1": stages[1][1]}
        width |= dict.fromkeys(("c21", "c22", "c2"), stages[2][1]) | {"c3": stages[3][1]}

        self.n_styles = 2 * int(math.log2(size)) - 2
        self.label_nc = label_nc
        self.input_label_layer = TranslationNetwork(label_nc, width["c256"]) if label_nc else None
        self.input_layer = irse_input_layer(width["c256"])
        self.body = irse_body(stages)
        fpn = width["c3"]
        self.styles = nn.ModuleList(
            GradualStyleBlock(fpn, style_dim, STYLE_CONVS[(i >= COARSE) + (i >= MIDDLE)], max_pooling)
            for i in range(self.n_styles)
        )
        self.latlayer1 = nn.Conv2d(width["c2"], fpn, 1)
        self.latlayer2 = nn.Conv2d(width["c1"], fpn, 1)
        middle = 3 * width["c2"]
        self.featlayer = nn.Conv2d(middle, dec[4], 1)
        self.skiplayer = nn.Conv2d(middle, 3, 1)
        self.fusion = None
        if skip_max_layer:
            self.fusion = nn.ModuleList(
                FusionLayer(width[source], dec[level], use_skip_torgb, use_att, style_dim)
                for source, level in zip(SKIP_SOURCES[:skip_max_layer], SKIP_LEVELS, strict=False)
            )
        # conv weights channels-last, the layout the CPU forward runs in (`body_features`): else oneDNN copies
        # every weight into it on every call (a fifth of the encoder's time); values and keys are unchanged.
        # Also after a state_dict is loaded with assign=True (load_model), which hands over the file's layout
        _channels_last(self)
        self.register_load_state_dict_post_hook(_channels_last)

    def body_features(self, x: torch.Tensor, last_unit: int = 23) -> dict[str, torch.Tensor]:
        """The named body features (`BODY_TAPS`, plus c256) of x, running the body up to `last_unit`; x is an
        RGB image (3 channels: `input_layer`) or a label map (`label_nc` channels: T)."""
        self.check_input(x)
        if x.device.type == "cpu":  # oneDNN's convs are faster channels-last (each layer keeps the layout)
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.input_layer(x) if x.shape[1] == 3 else self.input_label_layer(x)
        feats = {"c256": x}
        for i, unit in enumerate(self.body[: last_unit + 1]):
            x = unit(x)
            if i in BODY_TAPS:
                feats[BODY_TAPS[i]] = x
        return feats

    def w_plus(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """E_w: the FPN and the style blocks on c3, p2, p1 → (B, n_styles, style_dim), without latent_avg."""
        c3 = feats["c3"]
        p2 = _upsample_add(c3, self.latlayer1(feats["c2"]))
        p1 = _upsample_add(p2, self.latlayer2(feats["c1"]))
        sources = (c3,) * COARSE + (p2,) * (MIDDLE - COARSE) + (p1,) * max(0, self.n_styles - MIDDLE)
        return torch.stack([style(src) for style, src in zip(self.styles, sources, strict=False)], dim=1)

    def skip_levels(self, l: int | None) -> int:  # noqa: E741 (the paper's name)
        """The number of fusion levels the paper's l needs ((l + 1) // 2); None: every fusion level built."""
        built = 0 if self.fusion is None else len(self.fusion)
        if l is None:
            return built
        n = (l + 1) // 2
        if l < 0 or n > built:
            raise ValueError(
                f"StyleGANEX encoder: l={l} needs {n} fusion levels, this encoder has {built} "
                "(skip_max_layer)"
            )
        return n

    def check_input(self, x: torch.Tensor) -> None:
        """(B, 3, H, W) or, with `label_nc`, (B, label_nc, H, W), H and W multiples of 8."""
        if x.ndim != 4 or x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(
                "StyleGANEX encoder expects (B, C, H, W) inputs with H, W multiples of 8, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] not in (3, self.label_nc or 3):
            labels = f" or {self.label_nc}-channel label maps" if self.label_nc else ""
            raise ConfigError(
                f"StyleGANEX encoder label_nc={self.label_nc}: expected 3-channel RGB images{labels}, got "
                f"{x.shape[1]} channels (label_nc: 1 for sketches, 19 for parsing maps)"
            )

    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None, l: int | None = None) -> EncoderOutput:  # noqa: E741
        """E(x1=x, x2, l): f, f_rgb and the skips of x; w+ of x2 (or of x when x2 is None). x and x2 are
        each an RGB image or a label map (see `body_features`)."""
        n = self.skip_levels(l)
        feats = self.body_features(x, last_unit=23 if x2 is None else 20)
        w_plus = self.w_plus(feats if x2 is None else self.body_features(x2))
        middle = torch.cat((feats["c21"], feats["c22"], feats["c2"]), dim=1)
        skips = tuple(feats[name] for name in SKIP_SOURCES[:n])
        return EncoderOutput(w_plus, self.featlayer(middle), self.skiplayer(middle), skips)


def _channels_last(module: nn.Module, incompatible_keys=None) -> None:
    """The 4-D (conv) weights of `module` channels-last, in place (also a load_state_dict post hook)."""
    module.to(memory_format=torch.channels_last)


def _upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: `top` resized bilinearly (align_corners=True) to the lateral's size, plus the lateral."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral
