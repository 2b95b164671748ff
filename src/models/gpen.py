"""GPEN (Yang et al., "GAN Prior Embedded Network for Blind Face Restoration in the Wild", CVPR 2021).

Two stages (paper Sec. 3.3): a StyleGAN2 GAN prior is trained on HQ faces (`model=stylegan2`), then embedded
as the decoder of the U-shaped `GPENGenerator` and the whole network is fine-tuned on synthetic LQ-HQ pairs.
The decoder starts from the prior (`prior.checkpoint`, loaded when fitting starts, not when resuming): our
`model=stylegan2` checkpoint (its EMA generator, and its discriminator), a rosinality / GPEN training
checkpoint (`g_ema`, `d`), or an official release; see src/models/gpen_import.py for the layouts.

Two recipes, chosen by `recipe` among the entries of `recipes` (every number in conf/model/gpen.yaml):
- `paper`: L = L_A + α·L_C + β·L_F (paper Eq. 3), α = 1, β = 0.02. L_A the StyleGAN2 non-saturating
  logistic loss, L_C the L1 distance to the ground truth, L_F feature matching on the discriminator's
  intermediate features (Eq. 2; the paper writes ‖D_i(X) − D_i(X̂)‖₂ without a normalisation, we average the
  squared difference over each feature map, as perceptual losses do: `fm_criterion`). Adam with learning
  rates encoder : decoder : discriminator = 100 : 10 : 1, encoder 0.002; batch 1. L_A is "inherited from the
  GAN prior network", so D keeps StyleGAN2's lazy R1 (γ = 10 every 16 batches).
- `simple`: the official train_simple.py ("simplified", README): non-saturating loss + 1.0·SmoothL1 +
  1.0·identity (1 − cos of IR-SE50 embeddings), lazy R1 and path length (weight 2 every 4, whole batch), Adam
  0.002 for all of G and for D. The identity loss needs model_ir_se50.pth; without it the term is skipped
  with a warning (`identity.required: true` refuses instead).

Step order per batch (train_simple.py): D step, lazy R1 (its own D step), G step, lazy path length (its own
G step), generator EMA (0.5^(32/10000) per step, official `accumulate`). Adam's lr and betas get the
lazy-regularisation correction c = k/(k+1) (StyleGAN2) for the optimizer whose regulariser is on.

Input contract: any size. As in the paper, the input is first resized (bilinear) to the model's `size`, and
the output is resized back to the input's size; in training both LQ and HQ are resized to `size`.
`restore()` uses the EMA generator (official inference loads `g_ema`).
"""

import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.models.base import eval_pair
from facezoo.models.components.arcface import IRSE50, gpen_identity_crop
from facezoo.models.components.gpen import GPENGenerator
from facezoo.models.gan_prior import GANPriorMixin
from facezoo.models.gpen_import import import_stylegan2_prior, match_state_dict
from facezoo.models.stylegan2 import LazyRegularizedGAN, resize_to
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import plain_dict
from facezoo.utils.pretrained import KNOWN_WEIGHTS, load_state_dict, resolve

log = logging.getLogger("facezoo")

RECIPE_KEYS = (
    "content", "content_weight", "fm_weight", "identity_weight", "r1_gamma", "path_weight",
    "lr_encoder", "lr_decoder", "lr_discriminator",
)
CONTENT = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
FM_CRITERIA = {"mse": F.mse_loss, "l1": F.l1_loss}


class GPEN(GANPriorMixin, LazyRegularizedGAN):
    METHOD = "GPEN"
    PRIOR_FILES = "a model=stylegan2 .ckpt, or a g_ema .pt"

    def __init__(
        self,
        generator: GPENGenerator,
        discriminator: nn.Module,
        recipe: str = "paper",
        recipes: Mapping | None = None,
        prior: Mapping | None = None,
        identity: Mapping | None = None,
        gan_loss: str = "softplus",
        fm_criterion: str = "mse",
        betas: tuple[float, float] = (0.0, 0.99),
        r1_every: int = 16,
        path_every: int = 4,
        path_batch_shrink: int = 1,
        path_decay: float = 0.01,
        lazy_reg_correction: bool = True,
        ema_half_life_images: float = 10000.0,
        ema_images: int | None = 32,
        ema_rampup: float | None = None,
        size: int | None = None,
        name: str = "gpen",
        **base_args,
    ) -> None:
        super().__init__(**base_args)
        recipes, prior, identity = plain_dict(recipes), plain_dict(prior), plain_dict(identity)
        betas = list(betas)
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        if recipe not in recipes:
            raise ConfigError(
                f"model.recipe={recipe!r}: expected one of {sorted(recipes)} "
                "(model.recipes, see conf/model/gpen.yaml)"
            )
        self.recipe = dict(recipes[recipe])
        missing = [k for k in RECIPE_KEYS if k not in self.recipe]
        if missing:
            raise ConfigError(f"model.recipes.{recipe} lacks {', '.join(missing)}")
        if self.recipe["content"] not in CONTENT:
            raise ConfigError(
                f"model.recipes.{recipe}.content={self.recipe['content']!r}: expected one of {list(CONTENT)}"
            )
        if fm_criterion not in FM_CRITERIA:
            raise ConfigError(f"model.fm_criterion={fm_criterion!r}: expected one of {list(FM_CRITERIA)}")
        if len({generator.size, discriminator.size, size or generator.size}) > 1:
            raise ConfigError(
                f"model.size={size}, model.generator.size={generator.size} and model.discriminator.size="
                f"{discriminator.size} must match"
            )
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = self.make_ema(generator, 0.0) if ema_half_life_images else None

        self.init_prior(prior)

        self.identity = {"weights": None, "required": False, **identity}
        self._identity: dict = {"net": None, "path": None}  # frozen IR-SE50 kept out of the checkpoint
        if self.recipe["identity_weight"] > 0:
            path = resolve(
                "ir_se50", self.identity["weights"], required=self.identity["required"],
                option="model.identity.weights",
            )
            if path is None:
                log.warning(
                    "GPEN: identity loss SKIPPED: %s not found (put it in pretrained/ or set "
                    "model.identity.weights=PATH; model.identity.required=true refuses to start instead)",
                    KNOWN_WEIGHTS["ir_se50"].filename,
                )
            self._identity["path"] = path

    @property
    def size(self) -> int:
        return self.generator.size

    # -- the GAN prior -------------------------------------------------------------------------------------
    def prior_decoder(self) -> nn.Module:
        return self.generator.generator

    @staticmethod
    def import_prior(state, decoder):
        return import_stylegan2_prior(state, decoder)

    # -- optimizers ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        r, hp = self.recipe, self.hparams
        encoder = [p for m in self.generator.encoder_modules for p in m.parameters()]
        groups = [
            {"params": encoder, "lr": r["lr_encoder"]},
            {"params": list(self.generator.generator.parameters()), "lr": r["lr_decoder"]},
        ]
        opt_g = torch.optim.Adam(groups, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=r["lr_discriminator"], betas=tuple(hp.betas)
        )
        self.correct_for_lazy_regularization(opt_g, r["path_weight"], hp.path_every)
        self.correct_for_lazy_regularization(opt_d, r["r1_gamma"], hp.r1_every)
        return opt_g, opt_d

    # -- inference -----------------------------------------------------------------------------------------
    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.generator_ema.module if self.generator_ema is not None else self.generator
        out = net(resize_to(lq, self.size))[0]
        return {"image": resize_to(out, lq.shape[-2:])}

    # -- losses --------------------------------------------------------------------------------------------
    def identity_net(self) -> IRSE50 | None:
        if self._identity["net"] is None and self._identity["path"] is not None:
            net = IRSE50()
            state = load_state_dict(self._identity["path"])
            # files saved before PyTorch 0.4.1 have no BatchNorm step counters: keep ours (unused in eval)
            counters = {k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")}
            net.load_state_dict(match_state_dict({**counters, **state}, net, "IR-SE50"))
            self._identity["net"] = net.eval().requires_grad_(False)
        net = self._identity["net"]
        return None if net is None else net.to(self.device)

    def identity_loss(self, fake: torch.Tensor, real: torch.Tensor, net: nn.Module) -> torch.Tensor:
        """1 − ⟨e(fake), e(real)⟩ of L2-normalised IR-SE50 embeddings of the face crops (train_simple.py)."""
        with torch.no_grad():
            target = net(gpen_identity_crop(real))
        return (1 - (net(gpen_identity_crop(fake)) * target).sum(1)).mean()

    def feature_matching(self, fake_features, real_features) -> torch.Tensor:
        criterion = FM_CRITERIA[self.hparams.fm_criterion]
        return sum(criterion(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True))

    # -- training ------------------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        r, hp = self.recipe, self.hparams
        lq, hq, _ = eval_pair(batch)
        lq, hq = resize_to(lq, self.size), resize_to(hq, self.size)
        opt_g, opt_d = self.optimizers()
        D = self.discriminator

        # 1. D: softplus(−D(y)) + softplus(D(G(x)))
        with torch.no_grad():
            fake = self.generator(lq)[0]
        loss_d = discriminator_loss(D(hq), D(fake), hp.gan_loss)
        self.step(opt_d, loss_d)
        logs = {"d": loss_d}
        # 2. lazy R1
        if self.regularize_now(r["r1_gamma"], hp.r1_every):
            logs["r1"] = self.r1_step(opt_d, D, hq, r["r1_gamma"])
        # 3. G: L_A + α·L_C + β·L_F (+ identity)
        fake = self.generator(lq)[0]
        fake_logits, fake_features = D(fake, return_features=True)
        logs["g_adv"] = generator_loss(fake_logits, hp.gan_loss)
        logs["content"] = CONTENT[r["content"]](fake, hq)
        loss = logs["g_adv"] + r["content_weight"] * logs["content"]
        if r["fm_weight"] > 0:
            with torch.no_grad():
                real_features = D(hq, return_features=True)[1]
            logs["fm"] = self.feature_matching(fake_features, real_features)
            loss = loss + r["fm_weight"] * logs["fm"]
        net = self.identity_net() if r["identity_weight"] > 0 else None
        if net is not None:
            logs["identity"] = self.identity_loss(fake, hq, net)
            loss = loss + r["identity_weight"] * logs["identity"]
        self.step(opt_g, loss)
        # 4. lazy path length (the mapped w of a G re-forward)
        if self.regularize_now(r["path_weight"], hp.path_every):
            n = max(1, lq.shape[0] // hp.path_batch_shrink)
            images, latents = self.generator(lq[:n], return_latents=True)
            logs["path"], logs["path_length"] = self.path_step(opt_g, images, latents, r["path_weight"])
        # 5. EMA
        self.update_ema(self.generator_ema, self.generator, lq.shape[0])
        return logs
