"""Unconditional StyleGAN2 (Karras et al., CVPR 2020): GPEN's first stage (its GAN prior) and GFP-GAN's prior.

Training step (rosinality/stylegan2-pytorch train.py order), on the HQ images of a batch (`hq`; `retouched`
for retouching batches, paired and unpaired):
1. D step: non-saturating logistic loss softplus(−D(x)) + softplus(D(G(z))).
2. Lazy R1 every `r1_every` batches (16): γ/2 · E‖∇D(x)‖² · r1_every (γ = 10), its own D step.
3. G step: softplus(−D(G(z))), z with style mixing (probability 0.9: two codes, a random crossover layer).
4. Lazy path-length regularisation every `path_every` batches (4) on a batch shrunk by `path_batch_shrink`
   (2): weight 2 · path_every · (‖J_wᵀy‖ − a)², a = running mean (decay 0.01), its own G step.
5. Generator EMA (see `GANModule.ema_decay`, src/models/gan.py).

Adam (lr 0.002, betas (0, 0.99); conf/model/stylegan2.yaml `optimizers`) with the lazy-regularisation
correction c = k/(k+1) of the learning rate and both betas (StyleGAN2 Appendix B: lr·c, β^c), k the interval
of the regulariser that shares the optimizer. Loss weights: `loss_weights.r1` (γ) and `loss_weights.path`.
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

from facezoo.datamodules.batch import eval_pair
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.models.components.stylegan2 import mixing_noise
from facezoo.models.gan import GANModule, resize_to
from facezoo.utils.errors import ConfigError

FD_METRIC = "pixel_fd"


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


class StyleGAN2(GANModule):
    LOSS_WEIGHTS = ("r1", "path")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        gan_loss: str = "softplus",
        path_batch_shrink: int = 2,
        mixing_prob: float = 0.9,
        truncation: float = 1.0,
        sample_seed: int = 0,
        fd_thumbnail: int = 8,
        name: str = "stylegan2",
        lpips_net: str | None = None,
        **gan_args,
    ) -> None:
        super().__init__(generator, discriminator, lpips_net=lpips_net, **gan_args)
        if path_batch_shrink < 1:
            raise ConfigError(f"model.path_batch_shrink={path_batch_shrink}: expected >= 1")
        self.val_fd = FrechetInceptionDistance(feature=Thumbnails(fd_thumbnail))
        self.test_fd = FrechetInceptionDistance(feature=Thumbnails(fd_thumbnail))

    def optimizer_groups(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    # -- sampling ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n images (n, 3, size, size) from the EMA generator, codes and noise drawn from `seed`."""
        net = self.inference_generator
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
        hp, w = self.hparams, self.loss_weights
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
        if self.regularize_now(w["r1"], hp.r1_every):
            logs["r1"] = self.r1_step(opt_d, self.discriminator, real, w["r1"])
        # 3. G: softplus(−D(G(z)))
        fake = self.generator(self.noise(b, device))[0]
        loss_g = generator_loss(self.discriminator(fake), hp.gan_loss)
        self.step(opt_g, loss_g)
        logs["g"] = loss_g
        # 4. lazy path-length regularisation on a shrunk batch
        if self.regularize_now(w["path"], hp.path_every):
            n = max(1, b // hp.path_batch_shrink)
            images, latents = self.generator(self.noise(n, device), return_latents=True)
            logs["path"], logs["path_length"] = self.path_step(opt_g, images, latents, w["path"])
        # 5. EMA
        self.update_ema(b)
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
