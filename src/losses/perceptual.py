"""VGG19 perceptual and style (Gram) losses with the frozen VGG loaded offline through the weights resolver.

Layers are named as in BasicSR's ``VGGFeatureExtractor``, in torchvision's ``vgg19().features`` order
(``NAMES[i]`` is layer ``features[i]``, 0..36): ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...,
relu5_4, pool5``. ``convX_Y`` is the convolution's output **before** its ReLU, ``reluX_Y`` the same feature
after it. So GFP-GAN's ``conv5_4`` is a pre-activation feature, while RetouchFormer's torchvision slices end
on ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1`` (post-activation, on raw [-1, 1] input:
``input_norm='none'``).

``VGG19Features`` holds its convolutions as buffers run functionally (it is never trained: no parameters, no
optimizer state); ``PerceptualLoss`` holds it as a ``Frozen`` helper (losses/frozen.py), so it is never in the
owning LightningModule's ``state_dict()`` (nor its checkpoints) and still follows ``.to(device / dtype)``. The
weights come from the resolver (``vgg19-dcbb9e9d.pth``, torchvision layout ``features.N.weight/bias``;
``classifier.*`` is ignored).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facezoo.losses.frozen import Frozen
from facezoo.utils.errors import ConfigError, FacezooError
from facezoo.weights.resolver import resolve, warn_random_init
from facezoo.weights.state_dict import load_state_dict

_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
_WIDTHS = (64, 128, 256, 512, 512)
_OPTION = "the perceptual loss's weights option"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("imagenet", "none")
INPUT_RANGES = ("[-1,1]", "[0,1]")
CRITERIA = {"l1": F.l1_loss, "mse": F.mse_loss}


def _names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate(_CONVS_PER_BLOCK, 1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


NAMES = _names()  # NAMES[i] names torchvision's vgg19().features[i]


def scaled_width(channels: int, width: float) -> int:
    """``channels`` (of a VGG19 layer, or of a network built on its features) × ``width``, at least 1."""
    return max(1, round(channels * width))


def _conv_shapes(stack: tuple[str, ...], width: float = 1.0) -> dict[int, tuple[int, int]]:
    """``{torchvision index: (out_channels, in_channels)}`` of the 3x3 convolutions in ``stack``."""
    shapes, in_ch = {}, 3
    for index, name in enumerate(stack):
        if name.startswith("conv"):
            out_ch = scaled_width(_WIDTHS[int(name[4]) - 1], width)
            shapes[index], in_ch = (out_ch, in_ch), out_ch
    return shapes


def _load(path: os.PathLike, shapes: dict[int, tuple[int, int]]) -> dict[int, tuple[Tensor, Tensor]]:
    """The conv weights/biases of a torchvision-layout VGG19 file; a missing or mis-shaped key is an error."""
    state = load_state_dict(path)
    params = {}
    for index, (out_ch, in_ch) in shapes.items():
        for part, shape in (("weight", (out_ch, in_ch, 3, 3)), ("bias", (out_ch,))):
            key = f"features.{index}.{part}"
            if key not in state:
                raise FacezooError(
                    f"{path}: not a torchvision VGG19 state dict: no '{key}' ({NAMES[index]} {part})"
                )
            found = tuple(getattr(state[key], "shape", ()))
            if not torch.is_tensor(state[key]) or found != shape:
                raise FacezooError(
                    f"{path}: '{key}' ({NAMES[index]} {part}) has shape {found}, expected {shape}; "
                    "is this a VGG19 file?"
                )
        params[index] = (state[f"features.{index}.weight"].float(), state[f"features.{index}.bias"].float())
    return params


def _random(shapes: dict[int, tuple[int, int]]) -> dict[int, tuple[Tensor, Tensor]]:
    """torchvision's VGG init (Kaiming normal, fan_out, zero bias) from a fixed seed."""
    gen = torch.Generator().manual_seed(0)
    params = {}
    for index, (out_ch, in_ch) in shapes.items():
        weight = torch.empty(out_ch, in_ch, 3, 3)
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu", generator=gen)
        params[index] = (weight, torch.zeros(out_ch))
    return params


class VGG19Features(nn.Module):
    """VGG19 features (weights as buffers: never trained): ``forward(x)`` returns ``{layer: feature}`` for the
    requested layer names.

    Only the stack up to the deepest requested layer is built. The input is ``(B, 3, H, W)`` in
    ``input_range``; with ``input_norm='imagenet'`` it is mapped to [0, 1] and then ImageNet mean/std
    normalised (BasicSR's ``range_norm`` + ``use_input_norm``); with ``'none'`` it goes in unchanged.

    Args:
        layers: names from ``NAMES`` (see the module docstring for pre/post-ReLU).
        weights: explicit ``vgg19-dcbb9e9d.pth`` path (or a folder holding it); None searches the pretrained
            folder and torch hub's cache.
        allow_random: when the file is not found, warn loudly and use a fixed-seed random init instead of
            raising ``WeightsNotFoundError`` (tests and smoke runs only).
        width: every conv's channels × ``width`` (``scaled_width``); != 1 only for the random init (no file
            is searched), for networks whose widths follow the VGG's (DFDNet's tiny test configs).
    """

    def __init__(
        self,
        layers: list[str],
        weights: str | os.PathLike | None = None,
        allow_random: bool = False,
        input_norm: str = "imagenet",
        input_range: str = "[-1,1]",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        if not width > 0 or (width != 1 and (weights is not None or not allow_random)):
            raise ConfigError(
                f"VGG19 width={width}: expected 1.0 (the VGG19 file's), or a positive width with the random "
                "VGG19 only (allow_random and no weights file)"
            )
        unknown = [name for name in self.layers if name not in NAMES]
        if not self.layers or unknown:
            raise ConfigError(f"VGG19 layers {unknown or '[]'} unknown; choose from {', '.join(NAMES)}")
        if input_norm not in INPUT_NORMS:
            raise ConfigError(f"VGG19 input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        if input_range not in INPUT_RANGES:
            raise ConfigError(f"VGG19 input_range must be one of {INPUT_RANGES}, got {input_range!r}")
        self.input_norm, self.input_range = input_norm, input_range
        self.stack = NAMES[: max(NAMES.index(name) for name in self.layers) + 1]

        shapes = _conv_shapes(self.stack, width)
        self.weights_file = None
        if width == 1:
            self.weights_file = resolve("vgg19", explicit=weights, required=not allow_random, option=_OPTION)
        if self.weights_file is None:
            warn_random_init("VGG19 (perceptual loss)")
            params = _random(shapes)
        else:
            params = _load(self.weights_file, shapes)
        for index, (weight, bias) in params.items():
            self.register_buffer(f"{NAMES[index]}_weight", weight)
            self.register_buffer(f"{NAMES[index]}_bias", bias)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.input_norm == "imagenet":
            if self.input_range == "[-1,1]":
                x = (x + 1) / 2
            x = (x - self.mean) / self.std
        features = {}
        for previous, name in zip([None, *self.stack], self.stack, strict=False):
            if name.startswith("conv"):
                x = F.conv2d(x, getattr(self, f"{name}_weight"), getattr(self, f"{name}_bias"), padding=1)
            elif name.startswith("relu"):  # in place unless the pre-activation conv output is returned
                x = F.relu(x, inplace=previous not in features)
            else:
                x = F.max_pool2d(x, 2)
            if name in self.layers:
                features[name] = x
        return features


def gram(features: Tensor) -> Tensor:
    """Gram matrices of ``(B, C, H, W)`` features: ``F Fᵀ / (C·H·W)``, ``(B, C, C)`` (as in BasicSR)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class PerceptualLoss(nn.Module):
    """BasicSR's ``PerceptualLoss``: ``forward(pred, target) -> (perceptual_loss, style_loss)``.

    perceptual = ``perceptual_weight · Σ_k layer_weights[k] · criterion(φ_k(pred), φ_k(target))`` and
    style = ``style_weight · Σ_k layer_weights[k] · criterion(gram(φ_k(pred)), gram(φ_k(target)))``.
    The target's features are computed under ``no_grad``; a term whose weight is 0 is a 0-tensor and is not
    computed (nor the VGG at all when both are 0).

    GFP-GAN (``options/train_gfpgan_v1.yml``): ``layer_weights={conv1_2: 0.1, conv2_2: 0.1, conv3_4: 1,
    conv4_4: 1, conv5_4: 1}`` (pre-ReLU features), ``criterion='l1'``, ``perceptual_weight=1``,
    ``style_weight=50``, input [-1, 1] → [0, 1] → ImageNet mean/std (the defaults here).

    Args:
        layer_weights: ``{layer name: weight}``, names from ``NAMES``.
        criterion: ``'l1'`` or ``'mse'`` (mean over elements).
        weights, allow_random, input_norm, input_range: as in ``VGG19Features``.
    """

    def __init__(
        self,
        layer_weights: dict[str, float],
        criterion: str = "l1",
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        weights: str | os.PathLike | None = None,
        allow_random: bool = False,
        input_norm: str = "imagenet",
        input_range: str = "[-1,1]",
    ) -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ConfigError(f"perceptual loss criterion must be one of {list(CRITERIA)}, got {criterion!r}")
        self.layer_weights = {str(name): float(w) for name, w in dict(layer_weights).items()}
        self.criterion = CRITERIA[criterion]
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        vgg = VGG19Features(list(self.layer_weights), weights, allow_random, input_norm, input_range)
        self.vgg = Frozen(vgg)

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        perceptual, style = pred.new_zeros(()), pred.new_zeros(())
        if self.perceptual_weight == 0 and self.style_weight == 0:
            return perceptual, style
        pred_feats = self.vgg(pred)
        with torch.no_grad():
            target_feats = self.vgg(target.detach())
        if self.perceptual_weight != 0:
            perceptual = self.perceptual_weight * sum(
                w * self.criterion(pred_feats[k], target_feats[k]) for k, w in self.layer_weights.items()
            )
        if self.style_weight != 0:
            style = self.style_weight * sum(
                w * self.criterion(gram(pred_feats[k]), gram(target_feats[k]))
                for k, w in self.layer_weights.items()
            )
        return perceptual, style
