"""StyleGANEX inversion of one image (paper Sec. 4.2 and its supplementary; official `inversion.py` +
`latent_optimization.py`): a plain function per stage, usable from Python and notebooks as from
`facezoo-invert`.

Stage 1, `encode`: E's w+ (latent_avg added) and first-layer feature f of the image (+ f's RGB skip when the
model feeds f after G's first layer, + the skip features of a model with fusion layers), `draw`n by the frozen
decoder with its stored noise.

Stage 2, `optimise`, as official `latent_optimization` but for the noise: Adam at lr 0.05 (its `init_lr`) on
f (and f's RGB skip) and on w+ (official: two Adams with the same lr and schedule, the same as one), the lr
ramped each step by `official_lr` (rosinality's projector: cosine ramp-up over the first 5 % of the steps,
ramp-down over the last 25 %); w+ jittered by Gaussian noise of std latent_std · 0.01 · max(0, 1 − t/0.75)²
(latent_std from 1000 mapped z; drawn from `seed` here); the output pooled to the target's size before the
loss (official: the integer-factor mean); the loss the caller's (official: LPIPS-VGG, summed over the batch).
Official `inversion.py` runs 500 steps. It also optimises fresh random noise maps (with a 10³ noise
regulariser) that its saved latents do not hold; here the decoder's stored noise stays fixed, so f and w+
alone redraw the image (`redraw`). The skip features are not optimised (the official optimises only f, its
RGB skip and w+).

An `Inversion` is drawn on a `canvas` (the image padded to the model's size multiple) and the image is its
`box` (top, left, height, width) in it; `reconstruction` = the decoder's r·|x| output brought to the canvas
as `StyleGANEX.predict` does (average-pooled when larger, else resized) and cropped to the box.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from facezoo.models.gan import resize_to

LR = 0.05  # latent_optimization: init_lr
RAMP_UP, RAMP_DOWN = 0.05, 0.25  # utils/inference_utils.get_lr
LATENT_NOISE = 0.05 * 0.2  # latent_optimization: noise_weight, × latent_std
NOISE_RAMP = 0.75  # the latent noise is 0 after 75 % of the steps
STD_SAMPLES = 1000  # z codes for latent_std


@dataclass
class Inversion:
    """What the decoder draws the image from: w+ (B, n_latent, style_dim) with latent_avg added, f, f_rgb
    (None: f enters G's first layer, official first_layer_feature_ind 0), the skip features (empty: no
    fusion layers), the canvas (H, W) and the image's box in it."""

    w_plus: torch.Tensor
    f: torch.Tensor
    f_rgb: torch.Tensor | None
    skips: list[torch.Tensor]
    canvas: tuple[int, int]
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict:
        """Plain tensors and ints (`torch.load(weights_only=True)` reads them back: `from_dict`)."""
        return {"w_plus": self.w_plus.detach().cpu(), "f": self.f.detach().cpu(),
                "f_rgb": None if self.f_rgb is None else self.f_rgb.detach().cpu(),
                "skips": [s.detach().cpu() for s in self.skips], "canvas": list(self.canvas),
                "box": list(self.box)}

    @classmethod
    def from_dict(cls, saved: Mapping, device: torch.device | str = "cpu") -> "Inversion":
        f_rgb = saved["f_rgb"]
        return cls(saved["w_plus"].to(device), saved["f"].to(device),
                   None if f_rgb is None else f_rgb.to(device), [s.to(device) for s in saved["skips"]],
                   tuple(saved["canvas"]), tuple(saved["box"]))


@torch.no_grad()
def encode(model, canvas: torch.Tensor, box: tuple[int, int, int, int]) -> Inversion:
    """Stage 1: E(x, face) of the canvas (B, 3, H, W) in [-1, 1] as `StyleGANEX.generate` takes it."""
    x = model.encoder_input(canvas)
    face = model.face_of(x)
    out = model.encoder(x, None if face is x else face)
    fusion = model.encoder.fusion is not None
    return Inversion(out.w_plus + model.latent_avg, out.f, out.f_rgb if model.hparams.feat_ind else None,
                     list(out.skips) if fusion else [], tuple(canvas.shape[-2:]), box)


def draw(model, inversion: Inversion, w_plus: torch.Tensor | None = None) -> torch.Tensor:
    """G's image (r·|x|) of an inversion (w+ replaced by `w_plus` when given), the decoder's stored noise."""
    fusion = None if model.encoder.fusion is None else list(model.encoder.fusion)
    image, _ = model.decoder(
        [inversion.w_plus if w_plus is None else w_plus], input_is_latent=True, randomize_noise=False,
        first_layer_feature=inversion.f, first_layer_rgb=inversion.f_rgb,
        skip_features=inversion.skips or None, fusion=fusion,
    )
    return image


def reconstruction(model, inversion: Inversion, w_plus: torch.Tensor | None = None) -> torch.Tensor:
    """The image at the input's size: G's output brought to the canvas (as `predict`), cropped to the box."""
    image = draw(model, inversion, w_plus)
    if image.shape[-1] > inversion.canvas[-1]:
        image = F.adaptive_avg_pool2d(image, inversion.canvas)
    top, left, h, w = inversion.box
    return resize_to(image, inversion.canvas)[..., top : top + h, left : left + w]


@torch.no_grad()
def redraw(model, saved: Mapping) -> torch.Tensor:
    """The reconstruction from a saved `Inversion.to_dict()` (e.g. facezoo-invert's latent.pt)."""
    return reconstruction(model, Inversion.from_dict(saved, model.latent_avg.device))


def official_lr(t: float, lr: float) -> float:
    """The lr at t = step / steps (official get_lr: cosine ramp-up over 5 %, ramp-down over the last 25 %)."""
    ramp = 0.5 - 0.5 * math.cos(min(1.0, (1 - t) / RAMP_DOWN) * math.pi)
    return lr * ramp * min(1.0, t / RAMP_UP)


@torch.no_grad()
def latent_std(model, generator: torch.Generator) -> float:
    """The spread of mapped codes: sqrt(Σ‖w − mean w‖² / n) over n = 1000 random z (official)."""
    device = model.latent_avg.device
    z = torch.randn(STD_SAMPLES, model.decoder.style_dim, generator=generator).to(device)
    w = model.decoder.get_latent(z)
    return float(((w - w.mean(0)).pow(2).sum() / STD_SAMPLES).sqrt())


def optimise(
    model,
    start: Inversion,
    target: torch.Tensor,
    steps: int,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lr: float = LR,
    seed: int = 0,
    advance: Callable[[int, str], None] | None = None,
) -> Inversion:
    """Stage 2: `steps` Adam steps on f (and f_rgb) and w+ from `start`, minimising loss(reconstruction,
    target) (target: the image, (B, 3, h, w) in [-1, 1]); `advance(1, note)` after each step."""
    generator = torch.Generator().manual_seed(seed)
    spread = latent_std(model, generator) if steps else 0.0
    moved = {"w_plus": start.w_plus, "f": start.f, "f_rgb": start.f_rgb}
    moved = {k: v.detach().clone().requires_grad_(True) for k, v in moved.items() if v is not None}
    inversion = replace(start, **moved)
    optimizer = torch.optim.Adam(moved.values(), lr=lr)
    for step in range(steps):
        t = step / steps
        for group in optimizer.param_groups:
            group["lr"] = official_lr(t, lr)
        strength = spread * LATENT_NOISE * max(0.0, 1 - t / NOISE_RAMP) ** 2
        jitter = torch.randn(inversion.w_plus.shape, generator=generator).to(inversion.w_plus.device)
        value = loss(reconstruction(model, inversion, inversion.w_plus + strength * jitter), target)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if advance is not None:
            advance(1, f"loss {float(value.detach()):.4f}")
    return replace(inversion, **{k: v.detach() for k, v in moved.items()})
