"""ArcFace face-recognition backbones used as identity losses and metrics (Deng et al., "ArcFace: Additive
Angular Margin Loss for Deep Face Recognition", CVPR 2019). Each takes the input its released weights expect.

`ResNetArcFace`: GFP-GAN's identity network (gfpgan/archs/arcface_arch.py, from ronghuaiyang/arcface-pytorch):
a ResNet-18 of improved residual blocks (`IRBlock`) on 1×128×128 gray faces → 512-d embeddings (not
normalised). Key names are those of arcface_resnet18.pth (a bare state_dict, 181 tensors with the BN buffers):
`conv1`, `bn1`, `prelu`, `layer1.0.bn0`, `layer2.0.downsample.0.weight`, …, `bn4`, `fc5` (32768 → 512), `bn5`.
`gfpgan_identity_input` is GFP-GAN's preprocessing (gfpgan_model.py `gray_resize_for_identity`).

`IRSE50`: the IR-SE50 backbone (InsightFace_Pytorch's `Backbone(112, 50, 'ir_se')`, key names of
model_ir_se50.pth, 397 tensors) on 112×112 RGB crops, used by GPEN's (and StyleGANEX's) identity loss, with
`gpen_identity_crop`, the crop the official GPEN training loop feeds it. Its stem and body builders
(`irse_input_layer`, `irse_body`) are also the body of the StyleGANEX encoder (styleganex_encoder.py).
"""

import torch
import torch.nn.functional as F
from torch import nn

# --- ResNetArcFace (GFP-GAN) ------------------------------------------------------------------------------


class SEBlock(nn.Module):
    """Squeeze-and-excitation of arcface_arch.py: global average → `fc` (Linear c→c/16, PReLU, Linear c/16→c,
    Sigmoid) → channel weights."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.PReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[..., None, None]


class IRBlock(nn.Module):
    """Improved residual block: bn0 → conv1 3×3 (in→in) → bn1 → prelu → conv2 3×3 (in→out, `stride`) → bn2
    → [se], plus the shortcut (`downsample`: 1×1 conv with `stride` + BN, when the shape changes), then the
    same `prelu` again (one PReLU module, one shared slope, used twice)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, use_se: bool = False) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SEBlock(channels) if use_se else None
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(self.bn0(x))))))
        if self.se is not None:
            out = self.se(out)
        residual = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + residual)


class ResNetArcFace(nn.Module):
    """GFP-GAN's ArcFace: (B, 1, 128, 128) gray faces (`gfpgan_identity_input`) → (B, 512) embeddings.

    conv1 3×3 (1→64, no bias) → bn1 → prelu → maxpool 2 (64×64) → layer1..4 (64, 128, 256, 512 channels; the
    last three halve the size, down to 8×8) → bn4 → dropout (p 0.5) → flatten → fc5 (512·8·8 → 512) → bn5.
    The release is `ResNetArcFace("IRBlock", (2, 2, 2, 2), use_se=False)` (arcface_resnet18.pth); IRBlock
    is the only block type the release uses, so it is the only one offered. Use it in eval mode (BN stats).
    """

    WIDTHS = (64, 128, 256, 512)

    def __init__(self, block: str = "IRBlock", layers=(2, 2, 2, 2), use_se: bool = False) -> None:
        super().__init__()
        if block != "IRBlock":
            raise ValueError(f"ResNetArcFace: block must be 'IRBlock' (the released network), got {block!r}")
        if len(layers) != len(self.WIDTHS):
            raise ValueError(f"ResNetArcFace: layers needs {len(self.WIDTHS)} block counts, got {layers!r}")
        self.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        in_channels = 64
        for k, (channels, n) in enumerate(zip(self.WIDTHS, layers, strict=True), start=1):
            stride = 1 if k == 1 else 2
            blocks = [IRBlock(in_channels, channels, stride, use_se)]
            blocks += [IRBlock(channels, channels, 1, use_se) for _ in range(n - 1)]
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
            in_channels = channels
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(512 * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)
        for m in self.modules():  # the official initialisation (weights are normally loaded over it)
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_normal_(m.weight)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (1, 128, 128):
            raise ValueError(
                f"ResNetArcFace expects (B, 1, 128, 128) gray faces (gfpgan_identity_input), "
                f"got {tuple(x.shape)}"
            )
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.bn5(self.fc5(self.dropout(self.bn4(x)).flatten(1)))


GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def gfpgan_identity_input(x: torch.Tensor) -> torch.Tensor:
    """GFP-GAN's identity preprocessing of (B, 3, H, W) RGB in [-1, 1]: gray = 0.2989 R + 0.5870 G +
    0.1140 B (on the [-1, 1] values as they are), bilinear resize to 128×128 (align_corners=False)
    → (B, 1, 128, 128)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"gfpgan_identity_input expects (B, 3, H, W) RGB images, got {tuple(x.shape)}")
    r, g, b = GRAY_WEIGHTS
    gray = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]
    return F.interpolate(gray, size=(128, 128), mode="bilinear", align_corners=False)


# --- IR-SE50 (GPEN, StyleGANEX) ---------------------------------------------------------------------------


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


IRSE50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))  # (in_channel, depth, units)


def irse_input_layer(width: int = 64) -> nn.Sequential:
    """The IR-SE stem `input_layer.{0,1,2}`: conv3×3 (3 → width, no bias) → BN → PReLU(width)."""
    return nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def irse_body(stages=IRSE50_STAGES) -> nn.Sequential:
    """The flat IR-SE body `body.{0..}`: per stage (in_channel, depth, units), one stride-2 `BottleneckIRSE`
    then units − 1 stride-1 ones. IR-SE50 (`IRSE50_STAGES`): 24 units, 3/4/14/3 of 64/128/256/512 channels."""
    units = []
    for in_channel, depth, n in stages:
        units.append(BottleneckIRSE(in_channel, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
    return nn.Sequential(*units)


class IRSE50(nn.Module):
    """ArcFace IR-SE50 on 112×112 faces in [-1, 1] → L2-normalised 512-d embeddings (eval mode expected).

    Four stages of 3, 4, 14 and 3 units (64, 128, 256, 512 channels), each starting with a stride-2 unit.
    """

    def __init__(self, drop_ratio: float = 0.6) -> None:
        super().__init__()
        self.input_layer = irse_input_layer()
        self.body = irse_body()
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
