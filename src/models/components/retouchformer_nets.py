"""RetouchFormer's convolutional parts (Xue et al., AAAI 2024, Fig. 2): the multi-scale encoder E, the
multi-scale token embedding, the reconstruction decoder R of the clean-face prior and the synthesis
decoder G.

Level l of the encoder has stride 2**l; the token grid has the stride of the deepest level. Each token level
l is cut into non-overlapping p×p patches (p = token stride / 2**l) that become `dim`-d tokens, so every
token scale lands on the same grid (the paper's "spatial patches from several intermediate layers"; the
released code does the same with strided convs). Widths are configurable; the paper's sizes are 512-d
tokens at 1/8 of a 512-px image.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 if stride == 1 else 1)


class MultiScaleEncoder(nn.Module):
    """E: a plain conv pyramid; returns one feature map per level (strides 1, 2, 4, ...)."""

    def __init__(self, channels: list[int], in_channels: int = 3) -> None:
        super().__init__()
        self.channels = [int(c) for c in channels]
        widths = [in_channels, *self.channels]
        self.levels = nn.ModuleList(
            nn.Sequential(
                _conv(widths[i], widths[i + 1], 3 if i == 0 else 4, 1 if i == 0 else 2),
                _act(),
                _conv(widths[i + 1], widths[i + 1]),
                _act(),
            )
            for i in range(len(channels))
        )

    @property
    def stride(self) -> int:
        return 2 ** (len(self.levels) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


def _patch_size(level: int, n_levels: int) -> int:
    return 2 ** (n_levels - 1 - level)


class MultiScaleTokens(nn.Module):
    """Patch embeddings of the chosen encoder levels → tokens (B, S, dim, h, w) on the deepest grid."""

    def __init__(self, channels: list[int], levels: list[int], dim: int) -> None:
        super().__init__()
        if not levels or any(not 0 <= lv < len(channels) for lv in levels):
            raise ValueError(
                f"token levels {levels}: expected indices of encoder levels 0..{len(channels) - 1}"
            )
        self.levels = list(levels)
        self.embed = nn.ModuleList(
            nn.Conv2d(channels[lv], dim, p, p) for lv in levels for p in [_patch_size(lv, len(channels))]
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([emb(feats[lv]) for emb, lv in zip(self.embed, self.levels, strict=True)], dim=1)


class UNetDecoder(nn.Module):
    """Decodes an encoder pyramid U-Net style: bilinear ×2, skip concatenation, two 3×3 convs per level,
    then a 3×3 conv head at full resolution."""

    def __init__(self, channels: list[int], out_channels: int = 3) -> None:
        super().__init__()
        self.ups = nn.ModuleList(
            nn.Sequential(
                _conv(channels[lv + 1] + channels[lv], channels[lv]),
                _act(),
                _conv(channels[lv], channels[lv]),
                _act(),
            )
            for lv in range(len(channels) - 2, -1, -1)
        )
        self.head = _conv(channels[0], out_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([h, skip], dim=1))
        return self.head(h)


class SynthesisDecoder(UNetDecoder):
    """G: maps the transformer's change of each token scale back onto its encoder level (the transposed
    patch embedding), adds it to the encoder features, and decodes them (`UNetDecoder`) to an RGB image.

    Only the change t̂ − t is written back, so features under tokens the selective attention left unchanged
    (imperfection-free tokens) reach the decoder exactly as encoded."""

    def __init__(self, channels: list[int], levels: list[int], dim: int, out_channels: int = 3) -> None:
        super().__init__(channels, out_channels)
        self.levels = list(levels)
        self.back = nn.ModuleList(
            nn.ConvTranspose2d(dim, channels[lv], p, p)
            for lv in levels
            for p in [_patch_size(lv, len(channels))]
        )

    def forward(
        self, feats: list[torch.Tensor], tokens: torch.Tensor, tokens_hat: torch.Tensor
    ) -> torch.Tensor:
        feats = list(feats)
        delta = tokens_hat - tokens
        for s, (back, lv) in enumerate(zip(self.back, self.levels, strict=True)):
            feats[lv] = feats[lv] + back(delta[:, s])
        return super().forward(feats)


class ReconstructionDecoder(nn.Module):
    """R: decodes quantized clean-face codes (B, code_dim, h, w) to an image through the bottleneck only (no
    skips), so what it can draw is limited to what the dictionary P holds."""

    def __init__(self, code_dim: int, channels: list[int], out_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(code_dim, channels[-1]), _act())
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                _conv(channels[lv + 1], channels[lv]),
                _act(),
                _conv(channels[lv], channels[lv]),
                _act(),
            )
            for lv in range(len(channels) - 2, -1, -1)
        )
        self.head = _conv(channels[0], out_channels)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.stem(codes)
        for up in self.ups:
            h = up(h)
        return self.head(h)
