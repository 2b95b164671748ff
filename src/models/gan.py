"""What the GAN methods share (StyleGAN2, GPEN, GFP-GAN): a generator, a discriminator, the generator EMA that
restores, and StyleGAN2's lazy regularisation (Karras et al., CVPR 2020).

- Networks: `generator` and `discriminator` (injected), their size checked against `size`; `generator_ema`,
  an `AveragedModel` of the generator, is the inference generator (`restore()` runs it; without an EMA, the
  generator).
- The EMA counts images: β = 0.5^(images per step / half-life), half-life `ema_half_life_images` (StyleGAN2's
  `ema_kimg` 10k); `ema_images` fixes the images per step (rosinality / GPEN: 0.5^(32/10000) whatever the
  batch); `ema_rampup` (StyleGAN2-ADA) caps the half-life at rampup × images seen.
- Lazy regularisation: R1 every `r1_every` batches (`r1_step`, its own D step scaled by the interval) and
  path length every `path_every` batches (`path_step`), on the module's batch counter (batches 0, k, 2k …);
  their weights are `loss_weights.r1` (γ) and `loss_weights.path`. `lazy_reg_correction`: the optimizer that
  shares a regulariser's network gets lr·c and β^c with c = k/(k+1) (StyleGAN2 Appendix B), applied after it
  is built from the config.
- `resize_to`: the bilinear resize of inputs and outputs to the generator's size.
"""

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.gan_regularizers import path_length_penalty, r1_penalty
from facezoo.models.base import FaceZooModule
from facezoo.utils.errors import ConfigError


def resize_to(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking); a no-op when the size already matches."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def lazy_regularization_correction(optimizer: torch.optim.Optimizer, every: int) -> None:
    """StyleGAN2's lazy regularisation: with a regulariser every k minibatches, lr ← lr·c and β ← β^c with
    c = k/(k+1), for every parameter group (an Adam-like optimizer with `betas`)."""
    c = every / (every + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * c
        if "betas" in group:
            group["betas"] = tuple(b**c for b in group["betas"])


class GANModule(FaceZooModule):
    #: the optimizer groups that move the generator (the path-length regulariser's networks)
    GENERATOR_GROUPS: tuple[str, ...] = ("generator",)

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        size: int | None = None,
        r1_every: int = 16,
        path_every: int = 4,
        path_decay: float = 0.01,
        lazy_reg_correction: bool = True,
        ema_half_life_images: float = 10000.0,
        ema_images: int | None = None,
        ema_rampup: float | None = None,
        **base_args,
    ) -> None:
        super().__init__(**base_args)
        if len({generator.size, discriminator.size, size or generator.size}) > 1:
            raise ConfigError(
                f"model.size={size}, the generator's size {generator.size} and model.discriminator.size="
                f"{discriminator.size} must match"
            )
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = self.make_ema(generator, 0.0) if ema_half_life_images else None
        self.register_buffer("mean_path_length", torch.zeros(()))

    @property
    def size(self) -> int:
        return self.generator.size

    @property
    def native_size(self) -> int:
        return self.size

    @property
    def inference_generator(self) -> nn.Module:
        """The generator EMA (the generator when there is none): what restore() runs."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    def inference_networks(self) -> list[str]:
        return ["generator_ema" if self.generator_ema is not None else "generator"]

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    # -- lazy regularisation -------------------------------------------------------------------------------
    def lazy_regularizer(self, group: str) -> tuple[float, int]:
        """(weight, interval) of the lazy regulariser on the networks of optimizer group `group`."""
        if group == "discriminator":
            return self.loss_weights.get("r1", 0.0), self.hparams.r1_every
        if group in self.GENERATOR_GROUPS:
            return self.loss_weights.get("path", 0.0), self.hparams.path_every
        return 0.0, 0

    def prepare_optimizer(self, group: str, optimizer: torch.optim.Optimizer) -> None:
        weight, every = self.lazy_regularizer(group)
        if self.hparams.lazy_reg_correction and weight > 0 and every > 0:
            lazy_regularization_correction(optimizer, every)

    def regularize_now(self, weight: float, every: int) -> bool:
        """Lazy schedule: batches 0, k, 2k … of the run (rosinality's `i % k == 0`)."""
        return weight > 0 and every > 0 and int(self.batch_counter) % every == 0

    def r1_step(self, opt_d, discriminator: nn.Module, real: torch.Tensor, gamma: float) -> torch.Tensor:
        """D step on γ/2 · R1 · r1_every (+ 0·D(x): every D parameter takes part, for DDP)."""
        real = real.detach().requires_grad_(True)
        logits = discriminator(real)
        penalty = r1_penalty(logits, real)
        self.step(opt_d, gamma / 2 * penalty * self.hparams.r1_every + 0 * logits[0].sum())
        return penalty.detach()

    def path_step(self, opt_g, images: torch.Tensor, latents: torch.Tensor, weight: float):
        """G step on weight · path_every · (path length − running mean)²; updates the running mean (averaged
        over DDP ranks). → (penalty, mean path length of this batch)."""
        penalty, mean, lengths = path_length_penalty(
            images, latents, self.mean_path_length, self.hparams.path_decay
        )
        self.step(opt_g, weight * self.hparams.path_every * penalty + 0 * images[0, 0, 0, 0])
        if self.world_size > 1:
            mean = self.trainer.strategy.reduce(mean, reduce_op="mean")
        self.mean_path_length.copy_(mean.detach())
        return penalty.detach(), lengths.detach().mean()

    # -- the generator EMA ---------------------------------------------------------------------------------
    def ema_decay(self, batch_size: int) -> float:
        """β = 0.5^(images per step / half-life in images); with `ema_rampup` the half-life is at most
        rampup × images seen before this step (β = 0 at the first step: the EMA starts as a copy)."""
        hp = self.hparams
        step_images = batch_size * self.world_size
        images = hp.ema_images or step_images
        half_life = float(hp.ema_half_life_images)
        if hp.ema_rampup:
            half_life = min(half_life, int(self.batch_counter) * step_images * hp.ema_rampup)
        return 0.5 ** (images / max(half_life, 1e-8))

    @torch.no_grad()
    def update_ema(self, batch_size: int) -> None:
        if self.generator_ema is not None:
            self.generator_ema.multi_avg_fn.decay = self.ema_decay(batch_size)
            self.generator_ema.update_parameters(self.generator)
