"""Unconditional StyleGAN2 (Karras et al., CVPR 2020): GPEN's first stage (its GAN prior) and GFP-GAN's prior.

Training step (rosinality/stylegan2-pytorch train.py order), on the HQ images of a batch (`hq`; `retouched`
for retouching batches, paired and unpaired):
1. D step: non-saturating logistic loss softplus(−D(x)) + softplus(D(G(z))).
2. Lazy R1 every `r1_every` batches (16): γ/2 · E‖∇D(x)‖² · r1_every (γ = 10), its own D step.
3. G step: softplus(−D(G(z))), z with style mixing (probability 0.9: two codes, a random crossover layer).
4. Lazy path-length regularisation every `path_every` batches (4) on a batch shrunk by `path_batch_shrink`
   (2): weight 2 · path_every · (‖J_wᵀy‖ − a)², a = running mean (decay 0.01), its own G step.
5. Generator EMA (see `LazyRegularizedGAN.ema_decay`).

Adam (lr 0.002, betas (0, 0.99)) with the lazy-regularisation correction c = k/(k+1) of the learning rate
and both betas (StyleGAN2 Appendix B: lr·c, β^c), k the interval of the regulariser that shares the optimizer.
Schedules run on the module's `batch_counter` (0, 16, 32 … for R1), never on `trainer.global_step`.

The EMA: StyleGAN2 (and StyleGAN2-ADA) average with β = 0.5^(B/N) per step, B the global batch (images per
step) and N = 10k images the half-life (`ema_kimg` 10), so the averaging horizon is fixed in images whatever
the batch size: 0.5^(32/10000) at config-f's batch of 32. That is what we do by default
(`ema_images: null`). rosinality and GPEN hard-code 0.5^(32/10000) per step whatever their batch:
`ema_images: 32` reproduces that. `ema_rampup` (StyleGAN2-ADA, e.g. 0.05) caps the half-life at
rampup × images seen so far, so short runs get a useful EMA.

Inference: an unconditional GAN has nothing to restore. `restore(x)` / `predict(x)` return EMA samples, one
per input image, at the input's size (resized from the generator's), drawn with a fixed seed
(`sample_seed`) so grids of successive validations show the same codes. Validation and test log no PSNR
(meaningless here) but `{val,test}/pixel_fd`: the Fréchet distance between Gaussians fitted to
`fd_thumbnail`² × 3 thumbnails (8×8 RGB: 192-d, area-averaged) of EMA samples and of the real images of the
split — a crude, Inception-free FID that tracks colour and layout statistics, comparable only within a
project. A `ModelCheckpoint` monitoring another `val/` metric (the default callbacks monitor val/psnr) is
switched to `val/pixel_fd` (mode min) at fit start, with a warning.
"""


import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.gan_regularizers import path_length_penalty, r1_penalty
from facezoo.models.base import FaceZooModule, eval_pair
from facezoo.models.components.stylegan2 import mixing_noise
from facezoo.utils.errors import ConfigError

FD_METRIC = "pixel_fd"


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


def fixed_noise(generator: nn.Module, batch: int, rng: torch.Generator) -> list[torch.Tensor]:
    """One noise input per synthesis layer drawn from `rng`: (B, C or 1, r, r), r = 4, 8, 8, 16, 16 …"""
    noise = []
    for i in range(generator.num_layers):
        res = 2 ** ((i + 5) // 2)
        channels = generator.channels[res] if generator.isconcat else 1
        noise.append(torch.randn(batch, channels, res, res, generator=rng))
    return noise


class Thumbnails(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] → area-averaged t×t thumbnails, flattened (B, 3·t²): the features of
    the pixel Fréchet distance."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size
        self.num_features = 3 * size * size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float(), self.size).flatten(1)


class LazyRegularizedGAN(FaceZooModule):
    """What StyleGAN2 and GPEN share: lazy R1 and path-length steps, the lr/β correction, the image-based
    generator EMA. Subclasses save the hyperparameters `r1_every`, `path_every`, `path_decay`,
    `lazy_reg_correction`, `ema_half_life_images`, `ema_images`, `ema_rampup`."""

    def __init__(self, **base_args) -> None:
        super().__init__(**base_args)
        self.register_buffer("mean_path_length", torch.zeros(()))

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def inference_networks(self) -> list[str]:
        """restore() runs the generator EMA (the generator when there is none)."""
        return ["generator_ema" if getattr(self, "generator_ema", None) is not None else "generator"]

    def regularize_now(self, weight: float, every: int) -> bool:
        """Lazy schedule: batches 0, k, 2k … of the run (rosinality's `i % k == 0`)."""
        return weight > 0 and every > 0 and int(self.batch_counter) % every == 0

    def correct_for_lazy_regularization(self, optimizer, weight: float, every: int) -> None:
        if self.hparams.lazy_reg_correction and weight > 0 and every > 0:
            lazy_regularization_correction(optimizer, every)

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
    def update_ema(self, ema, net: nn.Module, batch_size: int) -> None:
        if ema is not None:
            ema.multi_avg_fn.decay = self.ema_decay(batch_size)
            ema.update_parameters(net)

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


class StyleGAN2(LazyRegularizedGAN):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g,
        optimizer_d,
        gan_loss: str = "softplus",
        r1_gamma: float = 10.0,
        r1_every: int = 16,
        path_weight: float = 2.0,
        path_every: int = 4,
        path_batch_shrink: int = 2,
        path_decay: float = 0.01,
        mixing_prob: float = 0.9,
        lazy_reg_correction: bool = True,
        ema_half_life_images: float = 10000.0,
        ema_images: int | None = None,
        ema_rampup: float | None = None,
        truncation: float = 1.0,
        sample_seed: int = 0,
        fd_thumbnail: int = 8,
        size: int | None = None,
        name: str = "stylegan2",
        lpips_net: str | None = None,
        **base_args,
    ) -> None:
        super().__init__(lpips_net=lpips_net, **base_args)
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        if len({generator.size, discriminator.size, size or generator.size}) > 1:
            raise ConfigError(
                f"model.size={size}, model.generator.size={generator.size} and model.discriminator.size="
                f"{discriminator.size} must match"
            )
        if path_batch_shrink < 1:
            raise ConfigError(f"model.path_batch_shrink={path_batch_shrink}: expected >= 1")
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = self.make_ema(generator, 0.0) if ema_half_life_images else None
        self._optimizers = (optimizer_g, optimizer_d)
        self.val_fd = FrechetInceptionDistance(feature=Thumbnails(fd_thumbnail))
        self.test_fd = FrechetInceptionDistance(feature=Thumbnails(fd_thumbnail))

    @property
    def size(self) -> int:
        return self.generator.size

    def configure_optimizers(self):
        hp = self.hparams
        make_g, make_d = self._optimizers
        opt_g, opt_d = make_g(self.generator.parameters()), make_d(self.discriminator.parameters())
        self.correct_for_lazy_regularization(opt_g, hp.path_weight, hp.path_every)
        self.correct_for_lazy_regularization(opt_d, hp.r1_gamma, hp.r1_every)
        return opt_g, opt_d

    # -- sampling ------------------------------------------------------------------------------------------
    @property
    def sampler(self) -> nn.Module:
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n images (n, 3, size, size) from the EMA generator, codes and noise drawn from `seed`."""
        net = self.sampler
        rng = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, net.style_dim, generator=rng).to(self.device)
        noise = [x.to(self.device) for x in fixed_noise(net, n, rng)]
        trunc = {}
        if self.hparams.truncation < 1:
            centre = torch.randn(4096, net.style_dim, generator=rng).to(self.device)
            trunc = dict(truncation=self.hparams.truncation, truncation_latent=net.style(centre).mean(0))
        return net([z], noise=noise, **trunc)[0]

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        """Samples, not restorations: one EMA sample per input image, at the input's size."""
        return {"image": resize_to(self.sample(lq.shape[0], self.hparams.sample_seed), lq.shape[-2:])}

    # -- training ------------------------------------------------------------------------------------------
    def real_images(self, batch: dict) -> torch.Tensor:
        """The HQ images of a batch at the generator's size: `hq`, or every `retouched` image."""
        if "hq" in batch:
            real = batch["hq"]
        else:
            parts = [batch[k]["retouched"] for k in ("paired", "unpaired_retouched") if k in batch]
            if not parts:
                raise ConfigError("StyleGAN2 needs HQ images: a batch with 'hq' or 'retouched' images")
            real = torch.cat(parts)
        return resize_to(real, self.size)

    def noise(self, batch: int, device) -> list[torch.Tensor]:
        return mixing_noise(batch, self.generator.style_dim, self.hparams.mixing_prob, device)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        hp = self.hparams
        real = self.real_images(batch)
        b, device = real.shape[0], real.device
        opt_g, opt_d = self.optimizers()

        # 1. D: softplus(−D(x)) + softplus(D(G(z)))
        with torch.no_grad():
            fake = self.generator(self.noise(b, device))[0]
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        loss_d = discriminator_loss(real_logits, fake_logits, hp.gan_loss)
        self.step(opt_d, loss_d)
        logs = {"d": loss_d, "real_score": real_logits.mean(), "fake_score": fake_logits.mean()}
        # 2. lazy R1
        if self.regularize_now(hp.r1_gamma, hp.r1_every):
            logs["r1"] = self.r1_step(opt_d, self.discriminator, real, hp.r1_gamma)
        # 3. G: softplus(−D(G(z)))
        fake = self.generator(self.noise(b, device))[0]
        loss_g = generator_loss(self.discriminator(fake), hp.gan_loss)
        self.step(opt_g, loss_g)
        logs["g"] = loss_g
        # 4. lazy path-length regularisation on a shrunk batch
        if self.regularize_now(hp.path_weight, hp.path_every):
            n = max(1, b // hp.path_batch_shrink)
            images, latents = self.generator(self.noise(n, device), return_latents=True)
            logs["path"], logs["path_length"] = self.path_step(opt_g, images, latents, hp.path_weight)
        # 5. EMA
        self.update_ema(self.generator_ema, self.generator, b)
        return logs

    # -- evaluation: pixel Fréchet distance instead of PSNR -------------------------------------------------
    def _update_fd(self, batch: dict, batch_idx: int, stage: str) -> None:
        _, target, _ = eval_pair(batch)
        seed = self.hparams.sample_seed + 1 + batch_idx * self.world_size + self.global_rank
        metric = getattr(self, f"{stage}_fd")
        metric.update(resize_to(target, self.size), real=True)
        metric.update(self.sample(target.shape[0], seed).clamp(-1, 1), real=False)

    def _log_fd(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_fd")
        if metric.real_features_num_samples >= 2 and metric.fake_features_num_samples >= 2:
            self.log(f"{stage}/{FD_METRIC}", metric.compute().float())
        metric.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._update_fd(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_fd("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._update_fd(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self._log_fd("test")
