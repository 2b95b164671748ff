"""The baseline: Pix2Pix (Isola et al., CVPR 2017) — U-Net generator, conditional PatchGAN, L1 + GAN.

Objective (paper eq. 4): G* = arg min_G max_D L_cGAN(G, D) + λ L1(G), λ = 100 (`loss_weights.l1`), D on
concat(input, image). Adam 2e-4, β = (0.5, 0.999) for both networks (conf/model/baseline.yaml `optimizers`).
Step order per batch: generator (GAN + λ·L1), generator EMA, then discriminator (real vs detached fake).
Works on retouching data (paired raw → retouched; the unpaired parts of a γ split are not used, as in
the paper's fully supervised setting) and on restoration data (lq → hq).
"""

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import eval_pair
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.models.base import FaceZooModule


class Pix2PixBaseline(FaceZooModule):
    LOSS_WEIGHTS = ("l1",)

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        gan_loss: str = "vanilla",
        ema_decay: float = 0.999,
        ema_warmup: bool = True,
        residual: bool = False,
        name: str = "baseline",
        **base_args,
    ) -> None:
        super().__init__(**base_args)
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = self.make_ema(generator, ema_decay, ema_warmup) if ema_decay else None

    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple

    def optimizer_groups(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def generate(self, net: nn.Module, source: torch.Tensor) -> torch.Tensor:
        """G(x), or with `residual` x + G(x) clamped to [-1, 1] (not in Pix2Pix: a config option)."""
        out = net(source)
        return (source + out).clamp(-1, 1) if self.hparams.residual else out

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.generator_ema.module if self.generator_ema is not None else self.generator
        return {"image": self.generate(net, lq)}

    def inference_networks(self) -> list[str]:
        return ["generator_ema" if self.generator_ema is not None else "generator"]

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        source, target, _ = eval_pair(batch)
        opt_g, opt_d = self.optimizers()
        kind = self.hparams.gan_loss

        fake = self.generate(self.generator, source)
        loss_gan = generator_loss(self.discriminator(torch.cat([source, fake], 1)), kind)
        loss_l1 = F.l1_loss(fake, target)
        self.step(opt_g, loss_gan + self.loss_weights["l1"] * loss_l1)
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

        real_logits = self.discriminator(torch.cat([source, target], 1))
        fake_logits = self.discriminator(torch.cat([source, fake.detach()], 1))
        loss_d = discriminator_loss(real_logits, fake_logits, kind)
        self.step(opt_d, loss_d)
        return {"l1": loss_l1, "g_gan": loss_gan, "d": loss_d}
