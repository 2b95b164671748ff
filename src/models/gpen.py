"""GPEN (Yang et al., "GAN Prior Embedded Network for Blind Face Restoration in the Wild", CVPR 2021).

Two stages (paper Sec. 3.3): a StyleGAN2 GAN prior is trained on HQ faces (`model=stylegan2`), then embedded
as the decoder of the U-shaped `GPENGenerator` and the whole network is fine-tuned on synthetic LQ-HQ pairs.
The decoder starts from the prior (`prior.checkpoint`, loaded when fitting starts, not when resuming): our
`model=stylegan2` checkpoint (its EMA generator, and its discriminator), a rosinality / GPEN training
checkpoint (`g_ema`, `d`), or an official release; see src/weights/stylegan2.py for the layouts.

Two recipes, the config group `model/recipe` (conf/model/recipe/gpen_*.yaml hold every number):
- `gpen_paper` (default): L = L_A + α·L_C + β·L_F (paper Eq. 3), α = 1, β = 0.02. L_A the StyleGAN2
  non-saturating logistic loss, L_C the L1 distance to the ground truth, L_F feature matching on the
  discriminator's intermediate features (Eq. 2, src/losses/feature_matching.py; the paper writes
  ‖D_i(X) − D_i(X̂)‖₂ without a normalisation, we average the squared difference over each feature map, as
  perceptual losses do: `fm_criterion`). Adam with learning rates encoder : decoder : discriminator =
  100 : 10 : 1, encoder 0.002 (optimizer groups `encoder`, `decoder`, `discriminator`); batch 1. L_A is
  "inherited from the GAN prior network", so D keeps StyleGAN2's lazy R1 (γ = 10 every 16 batches).
- `gpen_simple`: the official train_simple.py ("simplified", README): non-saturating loss + 1.0·SmoothL1 +
  1.0·identity (1 − cos of IR-SE50 embeddings, src/losses/identity.py), lazy R1 and path length (weight 2
  every 4, whole batch), Adam 0.002 for all of G and for D. The identity loss needs model_ir_se50.pth; without
  it the term is skipped with a warning (`identity.required: true` refuses instead).

Step order per batch (train_simple.py): D step, lazy R1 (its own D step), G step, lazy path length (its own
G step), generator EMA (0.5^(32/10000) per step, official `accumulate`). Adam's lr and betas get the
lazy-regularisation correction c = k/(k+1) (StyleGAN2) for the optimizers whose regulariser is on (path
length: `encoder` and `decoder`; R1: `discriminator`).

Input contract: any size. As in the paper, the input is first resized (bilinear) to the model's `size`, and
the output is resized back to the input's size; in training both LQ and HQ are resized to `size`.
`restore()` uses the EMA generator (official inference loads `g_ema`).
"""

import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import eval_pair
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.feature_matching import FeatureMatchingLoss
from facezoo.losses.identity import IdentityLoss
from facezoo.models.components.gpen import GPENGenerator
from facezoo.models.gan import GANModule, resize_to
from facezoo.models.gan_prior import GANPriorMixin
from facezoo.models.identity_term import IdentityTermMixin
from facezoo.utils.errors import ConfigError
from facezoo.weights.stylegan2 import import_stylegan2_prior

log = logging.getLogger("facezoo")

CONTENT = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}


class GPEN(IdentityTermMixin, GANPriorMixin, GANModule):
    METHOD = "GPEN"
    PRIOR_FILES = "a model=stylegan2 .ckpt, or a g_ema .pt"
    LOSS_WEIGHTS = ("content", "fm", "identity", "r1", "path")
    GENERATOR_GROUPS = ("encoder", "decoder")

    def __init__(
        self,
        generator: GPENGenerator,
        discriminator: nn.Module,
        content: str = "l1",
        prior: Mapping | None = None,
        identity: Mapping | None = None,
        gan_loss: str = "softplus",
        fm_criterion: str = "mse",
        path_batch_shrink: int = 1,
        name: str = "gpen",
        **gan_args,
    ) -> None:
        super().__init__(generator, discriminator, **gan_args)
        if content not in CONTENT:
            raise ConfigError(f"model.content={content!r}: expected one of {list(CONTENT)}")
        self.feature_matching = FeatureMatchingLoss(fm_criterion)
        self.init_prior(prior)
        # the file is found now (a required one missing stops the run before any data is prepared) and read at
        # the first training step that uses it, as before: restore() and load_model never read it
        self.identity_file = self.find_identity_file(identity) if self.loss_weights["identity"] > 0 else None
        self.identity_loss: IdentityLoss | None = None

    # -- the GAN prior -------------------------------------------------------------------------------------
    def prior_decoder(self) -> nn.Module:
        return self.generator.generator

    @staticmethod
    def import_prior(state, decoder):
        return import_stylegan2_prior(state, decoder)

    # -- optimizers ----------------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, nn.Module | list[nn.Module]]:
        return {
            "encoder": self.generator.encoder_modules,
            "decoder": self.generator.generator,
            "discriminator": self.discriminator,
        }

    # -- inference -----------------------------------------------------------------------------------------
    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inference_generator(resize_to(lq, self.size))[0]
        return {"image": resize_to(out, lq.shape[-2:])}

    # -- training ------------------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        w, hp = self.loss_weights, self.hparams
        lq, hq, _ = eval_pair(batch)
        lq, hq = resize_to(lq, self.size), resize_to(hq, self.size)
        opt_encoder, opt_decoder, opt_d = self.optimizers()
        opt_g = [opt_encoder, opt_decoder]
        D = self.discriminator

        # 1. D: softplus(−D(y)) + softplus(D(G(x)))
        with torch.no_grad():
            fake = self.generator(lq)[0]
        loss_d = discriminator_loss(D(hq), D(fake), hp.gan_loss)
        self.step(opt_d, loss_d)
        logs = {"d": loss_d}
        # 2. lazy R1
        if self.regularize_now(w["r1"], hp.r1_every):
            logs["r1"] = self.r1_step(opt_d, D, hq, w["r1"])
        # 3. G: L_A + α·L_C + β·L_F (+ identity)
        fake = self.generator(lq)[0]
        fake_logits, fake_features = D(fake, return_features=True)
        logs["g_adv"] = generator_loss(fake_logits, hp.gan_loss)
        logs["content"] = CONTENT[hp.content](fake, hq)
        loss = logs["g_adv"] + w["content"] * logs["content"]
        if w["fm"] > 0:
            with torch.no_grad():
                real_features = D(hq, return_features=True)[1]
            logs["fm"] = self.feature_matching(fake_features, real_features)
            loss = loss + w["fm"] * logs["fm"]
        identity = self.identity() if w["identity"] > 0 else None
        if identity is not None:
            logs["identity"] = identity(fake, hq)
            loss = loss + w["identity"] * logs["identity"]
        self.step(opt_g, loss)
        # 4. lazy path length (the mapped w of a G re-forward)
        if self.regularize_now(w["path"], hp.path_every):
            n = max(1, lq.shape[0] // hp.path_batch_shrink)
            images, latents = self.generator(lq[:n], return_latents=True)
            logs["path"], logs["path_length"] = self.path_step(opt_g, images, latents, w["path"])
        # 5. EMA
        self.update_ema(lq.shape[0])
        return logs
