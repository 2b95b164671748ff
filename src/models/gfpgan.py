"""GFP-GAN (Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial Prior", CVPR 2021).

A degradation-removal U-Net maps the LQ face to a W+ code and multi-resolution spatial features; the
pretrained StyleGAN2 prior decodes the code while Channel-Split SFT layers inject the spatial features
(src/models/components/gfpgan.py). The prior is frozen by default (`generator.fix_decoder`, official
`fix_decoder: true`) and loaded when fitting starts from `model.prior.checkpoint` (src/models/gan_prior.py).
Two recipes, the config group `model/recipe` (conf/model/recipe/gfpgan_*.yaml): `gfpgan_paper`
(options/train_gfpgan_v1.yml, the default) and `gfpgan_simple` (train_gfpgan_v1_simple.yml: no
facial-component discriminators, no identity loss).

Step order per batch (gfpgan/models/gfpgan_model.py `optimize_parameters`), manual optimization:
1. G step with every discriminator frozen, one backward of (`loss_weights`, official
   options/train_gfpgan_v1.yml):
   0.1·L1(out, gt) + 1·Σ_levels L1(rgb_level, gt resized) (the pyramid loss, switched off after
   `pyramid_until` batches; official `remove_pyramid_loss: 50000` sets its weight to 1e-12, we skip it) +
   VGG-19 perceptual (conv1_2 0.1, conv2_2 0.1, conv3_4/4_4/5_4 1, L1) + Gram style (50) +
   0.1·softplus(−D(out)) + Σ_components [1·softplus(−D_c(crop)) + 200·(0.5·L1(Gram(f₁)) + L1(Gram(f₂)))] +
   10·L1(ArcFace(gray₁₂₈(out)), ArcFace(gray₁₂₈(gt))).
2. Generator EMA, 0.5^(32/10000) per step (`ema_images: 32`).
3. Global D: softplus(−D(gt)) + softplus(D(out)), plus lazy R1 every 16 batches, 10/2·R1·16, in the SAME
   backward and step (BasicSR adds the R1 gradient before `optimizer_d.step()`; rosinality steps twice).
4. Component Ds (left eye, right eye, mouth): BCE(D_c(gt crop), real) + softplus(D_c(out crop)), one step
   each. The official code scores real crops with the vanilla BCE and fakes with `wgan_softplus`; the two
   agree (BCE(x, real) = softplus(−x)), so this is the softplus D loss.
Adam (conf/model/gfpgan.yaml `optimizers`: generator, discriminator, and one per component D from
`components`); MultiStepLR (milestones in batches, γ 0.5) for every optimizer, stepped per batch.

Crops: eye and mouth boxes travel in the batch (`boxes`, see src/datamodules/boxes.py: the synthetic faces'
boxes, GFP-GAN's landmarks file, or canonical positions); RoIAlign by grid_sample at 80/120 px × size/512.
Identity: L1 of ArcFace ResNet-18 embeddings (`arcface_resnet18.pth`, src/losses/identity.py); without the
file the term is skipped with a warning
(`identity.required: true` refuses instead), and val/test log `identity` (cosine similarity of embeddings)
when it is there. Perceptual: VGG-19 likewise (`perceptual.required`).

Input contract: any size; the input is resized (bilinear) to `size` and the output back, as GPEN does.
`restore()` uses the EMA generator with the decoder's stored noise maps (deterministic; official inference
draws fresh noise: `restore_random_noise: true`).
"""

import logging
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import scale_boxes
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.gan_regularizers import r1_penalty
from facezoo.losses.identity import IdentityLoss
from facezoo.losses.perceptual import PerceptualLoss, gram
from facezoo.metrics.identity import IdentitySimilarity
from facezoo.models.components.arcface import ResNetArcFace, gfpgan_identity_input
from facezoo.models.components.facial_component import GFPGAN_COMPONENTS, component_crops
from facezoo.models.gan import GANModule, resize_to
from facezoo.models.gan_prior import GANPriorMixin
from facezoo.utils.errors import DataError
from facezoo.weights.gfpgan import import_gfpgan_prior
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve
from facezoo.weights.state_dict import load_state_dict, match_state_dict

log = logging.getLogger("facezoo")


def image_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[image / 2^(levels−1), …, image / 2, image]: bilinear halvings (GFP-GAN `construct_img_pyramid`)."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.insert(0, F.interpolate(pyramid[0], scale_factor=0.5, mode="bilinear", align_corners=False))
    return pyramid


class GFPGAN(GANPriorMixin, GANModule):
    METHOD = "GFP-GAN"
    PRIOR_FILES = (
        "a model=stylegan2 .ckpt, StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth (key stylegan2_512_gfpgan) "
        "or a GFP-GAN .pth whose decoder is taken"
    )
    LOSS_WEIGHTS = (
        "pixel", "pyramid", "perceptual", "style", "gan", "component_gan", "component_style", "identity",
        "r1",
    )

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        component_discriminator: Callable[[], nn.Module] | None = None,
        perceptual: Mapping | None = None,
        prior: Mapping | None = None,
        identity: Mapping | None = None,
        pyramid_until: int = 50_000,
        eye_size: int = 80,
        mouth_size: int = 120,
        restore_random_noise: bool = False,
        name: str = "gfpgan",
        **gan_args,
    ) -> None:
        """`component_discriminator`: builds one facial-component discriminator (left eye, right eye, mouth
        each get one); None: none (the simple recipe)."""
        super().__init__(generator, discriminator, **gan_args)
        w = self.loss_weights
        self.component_discriminators = nn.ModuleDict(
            {c: component_discriminator() for c in GFPGAN_COMPONENTS} if component_discriminator else {}
        )
        self.init_prior(prior)

        # frozen auxiliary networks, kept out of the checkpoint
        self.vgg = None
        if w["perceptual"] > 0 or w["style"] > 0:
            options = {"required": False, "allow_random": False, **(perceptual or {})}
            required = options.pop("required")
            found = resolve(
                "vgg19", options.get("weights"), required=required, option="model.perceptual.weights"
            )
            if found or options["allow_random"]:  # allow_random: a random VGG-19 (benchmarks and smoke tests)
                self.vgg = PerceptualLoss(
                    perceptual_weight=w["perceptual"], style_weight=w["style"], **options
                )
            else:
                self.training_note(
                    f"GFP-GAN: perceptual and style losses SKIPPED: {KNOWN_WEIGHTS['vgg19'].filename} not "
                    "found (model.perceptual.weights=PATH; model.perceptual.required=true refuses to start)"
                )
        self.identity_loss = self.val_identity = self.test_identity = None
        identity = {"weights": None, "required": False, **(identity or {})}
        path = resolve(
            "arcface_resnet18",
            identity["weights"],
            required=identity["required"] and w["identity"] > 0,
            option="model.identity.weights",
        )
        if path is not None:
            net = ResNetArcFace()
            net.load_state_dict(match_state_dict(load_state_dict(path), net, "ArcFace ResNet-18"))
            self.identity_loss = IdentityLoss(net, gfpgan_identity_input, "l1")
            self.val_identity = IdentitySimilarity(net, gfpgan_identity_input)
            self.test_identity = IdentitySimilarity(net, gfpgan_identity_input)
        elif w["identity"] > 0:
            self.training_note(
                f"GFP-GAN: identity loss SKIPPED: {KNOWN_WEIGHTS['arcface_resnet18'].filename} not found "
                "(model.identity.weights=PATH; model.identity.required=true refuses to start instead)"
            )

    # -- the GAN prior -------------------------------------------------------------------------------------
    def prior_decoder(self) -> nn.Module:
        return self.generator.stylegan_decoder

    @staticmethod
    def import_prior(state, decoder):
        return import_gfpgan_prior(state, decoder)

    # -- optimizers ----------------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, nn.Module | list[nn.Parameter] | dict[str, nn.Module]]:
        """The generator's trainable part (the decoder stays out when `fix_decoder`), the global D, and one
        optimizer per facial-component D."""
        return {
            "generator": self.generator.trainable_parameters(),
            "discriminator": self.discriminator,
            "components": dict(self.component_discriminators),
        }

    # -- inference -----------------------------------------------------------------------------------------
    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inference_generator(
            resize_to(lq, self.size), return_rgb=False, randomize_noise=self.hparams.restore_random_noise
        )
        return {"image": resize_to(out[0], lq.shape[-2:])}

    # -- losses --------------------------------------------------------------------------------------------
    def crops(self, images: torch.Tensor, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        return component_crops(images, boxes, self.size, hp.eye_size, hp.mouth_size)

    def batch_boxes(self, batch: dict, height: int) -> torch.Tensor:
        if "boxes" not in batch:
            raise DataError(
                "GFP-GAN's facial-component discriminators need eye and mouth boxes: set "
                "datamodule.component_boxes (auto | canonical | a GFP-GAN landmarks .pth), or train without "
                "them (model/recipe=gfpgan_simple)"
            )
        return scale_boxes(batch["boxes"], self.size / height)

    def pyramid_on(self) -> bool:
        return self.loss_weights["pyramid"] > 0 and int(self.batch_counter) < self.hparams.pyramid_until

    # -- training ------------------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        w, hp = self.loss_weights, self.hparams
        lq, hq = batch["lq"], batch["hq"]
        boxes = self.batch_boxes(batch, hq.shape[-2]) if self.component_discriminators else None
        lq, hq = resize_to(lq, self.size), resize_to(hq, self.size)
        opt_g, opt_d, *opt_components = self.optimizers()

        # 1. G, every D frozen (step() toggles the other optimizers' parameters off)
        pyramid = self.pyramid_on()
        out, rgbs = self.generator(lq, return_rgb=pyramid)
        logs = {"pixel": F.l1_loss(out, hq)}
        loss = w["pixel"] * logs["pixel"]
        if pyramid:
            targets = image_pyramid(hq, len(rgbs))
            logs["pyramid"] = sum(F.l1_loss(r, t) for r, t in zip(rgbs, targets, strict=True))
            loss = loss + w["pyramid"] * logs["pyramid"]
        if self.vgg is not None:
            logs["perceptual"], logs["style"] = self.vgg(out, hq)  # weighted inside
            loss = loss + logs["perceptual"] + logs["style"]
        logs["gan"] = generator_loss(self.discriminator(out), "softplus")
        loss = loss + w["gan"] * logs["gan"]
        if self.component_discriminators:
            fake_crops, real_crops = self.crops(out, boxes), self.crops(hq, boxes)
            for c, net in self.component_discriminators.items():
                logits, feats = net(fake_crops[c], return_feats=True)
                with torch.no_grad():
                    real_feats = net(real_crops[c], return_feats=True)[1]
                logs[f"{c}_gan"] = generator_loss(logits, "vanilla")
                logs[f"{c}_style"] = 0.5 * F.l1_loss(gram(feats[0]), gram(real_feats[0])) + F.l1_loss(
                    gram(feats[1]), gram(real_feats[1])
                )
                loss = (
                    loss + w["component_gan"] * logs[f"{c}_gan"] + w["component_style"] * logs[f"{c}_style"]
                )
        if w["identity"] > 0 and self.identity_loss is not None:
            logs["identity"] = self.identity_loss(out, hq)
            loss = loss + w["identity"] * logs["identity"]
        self.step(opt_g, loss)
        logs["g"] = loss.detach()

        # 2. EMA
        self.update_ema(lq.shape[0])

        # 3. global D, lazy R1 in the same step
        fake = out.detach()
        loss_d = discriminator_loss(self.discriminator(hq), self.discriminator(fake), "softplus")
        logs["d"] = loss_d.detach()
        if self.regularize_now(w["r1"], hp.r1_every):
            real = hq.detach().requires_grad_(True)
            logits = self.discriminator(real)
            logs["r1"] = r1_penalty(logits, real)
            loss_d = loss_d + w["r1"] / 2 * logs["r1"] * hp.r1_every + 0 * logits[0].sum()
        self.step(opt_d, loss_d)

        # 4. component Ds (each loss reaches only its own D: one backward, one step each)
        if self.component_discriminators:
            losses = []
            for c, net in self.component_discriminators.items():
                real_logits = net(real_crops[c])[0]
                fake_logits = net(fake_crops[c].detach())[0]
                losses.append(discriminator_loss(real_logits, fake_logits, "softplus"))
                logs[f"{c}_d"] = losses[-1].detach()
            self.step(opt_components, sum(losses))
        return logs

    # -- evaluation: identity similarity when ArcFace is there ----------------------------------------------
    def update_extra_metrics(self, stage: str, image: torch.Tensor, target: torch.Tensor) -> None:
        metric = getattr(self, f"{stage}_identity")
        if metric is not None:
            metric.update(image, target)

    def _log_identity(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_identity")
        if metric is not None and metric.update_called:
            self.log(f"{stage}/identity", metric.compute(), sync_dist=True)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_identity("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_identity("test")
