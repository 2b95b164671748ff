"""RetouchFormer (Xue et al., AAAI 2024): semi-supervised face retouching as "soft inpainting".

Networks (paper Fig. 2; names from the paper):
- E  `encoder` + `tokens`: multi-scale conv encoder; patches of several levels become `dim`-d tokens;
  `quant_conv` maps E's deepest feature to the dictionary's code space.
- P  `quantizer`: the clean-face feature dictionary (K codes), ρ* = argmin_k ‖E(y)(i,j) − ρ_k‖², learned on
  retouched images y only.
- R  `reconstructor`: decodes quantized codes; x̃ = R(E_ρ(x)) is x redrawn from clean-face codes.
- H  `mask_net` and its mean teacher H̄ `mask_teacher`: a U-Net on concat(x, x̃) → imperfection logits;
  θ_H̄ ← μ θ_H̄ + (1 − μ) θ_H (μ = 0.99) after every H step.
- T  `transformer`: Selective Self-Attention Blocks on the multi-scale tokens with the weighting map
  f_H(x) = σ(H̄(x, x̃)) resized to the token grid.
- G  `decoder`: writes T's change of the tokens back onto the encoder features and decodes ŷ.
- D  `discriminator`: pixel-level real/fake with H̄'s mask injected into its layers.

Objective (paper §"Model Training"), one iteration = three steps, in this order:
1. min_H  L_H̄ + L_H  (optimizer `mask`), then the EMA update of H̄.
2. min_{P,R} L_prior + L_con^rec  and  min_{E,T,G} L_prior + L_con^rec + L_con^x2y + L_adv^syn: one backward
   of the sum and a step of the `prior` (P, R) and `generator` (E, T, G) optimizers — P and R receive no
   gradient from L_con^x2y or L_adv^syn (x̃ only feeds H̄), so this equals the two separate minimisations.
   D is frozen during this step.
3. max_D L_adv^disc (optimizer `discriminator`): retouched images (paired and unpaired) are real; the
   synthesis ŷ and the raw input x itself are fake.

with L_prior = Σ‖E(y) − ρ*‖² (VQ codebook + commitment terms), L_con^rec = η‖y − ỹ‖₁ + ‖V(y) − V(ỹ)‖²,
L_con^x2y = ζ‖y_a − ŷ_a‖₁ + ‖V(y_a) − V(ŷ_a)‖² (V: VGG-19 features), η = ζ = 10 (`loss_weights`: eta, zeta,
lambda_conf, adv and perceptual, the weight of the ‖V − V‖² terms). The networks are injected
(conf/model/retouchformer.yaml); each optimizer group (`prior`, `mask`, `generator`, `discriminator`) has its
Adam and cosine schedule in the config.

Our reading of the mask losses (the paper's notation leaves open which network each gradient reaches):
- H̄ is the teacher: it receives no gradient at all and moves only by the EMA of H.
- L_H̄ = E‖σ(H(x_a, x̃_a)) − φ(x_a, y_a)‖² is the paired regression of the soft mask to the observed
  difference φ; it is named after H̄ because H̄ is the network whose output is used, but as H̄ has no
  trainable parameters of its own it is applied to the student H that H̄ averages.
- L_H = E[−1{φ>0} log σ(H(x_a, x̃_a))] + λ E_xu[−σ(H̄(x_u, x̃_u)) log σ(H(x_u, x̃_u))], λ = 0.5: confident
  detection of every changed pixel, plus the mean-teacher consistency on unpaired raw images (the teacher's
  soft mask is the target of the student's cross-entropy).
- `teacher_negatives=true` adds the other half of the cross-entropy, −(1 − σ(H̄)) log(1 − σ(H)), to the
  unpaired term (the usual mean-teacher consistency). The printed term alone only ever pushes the student's
  mask up on unpaired images; on the synthetic data it inflated the mask (Soft-IoU fell from 0.09 to 0.05
  over 10 epochs), so the CPU recipe turns it on.
- `conf_threshold` τ replaces the indicator 1{φ>0} with 1{φ>τ} (default 0, the paper). With τ = 0 every
  pixel φ barely marks — the faint rim around each blemish — is pushed to σ(H) → 1 with no opposing term
  but the small L_H̄ gradient, which inflates the mask (the CPU recipe uses τ = 0.5, see its config).
- φ(x, y) = clip((max_c |x − y| − threshold) / scale, 0, 1): the paper only says φ measures the per-pixel
  difference; the threshold ignores compression noise and the clip makes it a soft mask in [0, 1].

Switches for the paper's ablations: `use_prior=false` (Table 2, w/o P: H sees concat(x, x) instead of
concat(x, x̃)), `tokens.levels` with one level (w/ SPS), `transformer.mode=global` (w/ GSA),
`use_unpaired=false` (w/o X_u). `output` chooses how ŷ is formed: "synthesis" (the paper: ŷ = G(...)),
"residual" (x + G) or "blend" (x + σ(H̄)·G: soft inpainting in pixel space, pixels the mask leaves alone stay
the input's).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.perceptual import PerceptualLoss
from facezoo.models.base import FaceZooModule
from facezoo.models.components.mask_discriminator import MaskInjectedDiscriminator
from facezoo.models.components.retouchformer_nets import (
    MultiScaleEncoder,
    MultiScaleTokens,
    ReconstructionDecoder,
    SynthesisDecoder,
)
from facezoo.models.components.selective_attention import SelectiveTransformer
from facezoo.models.components.unet import UNetGenerator
from facezoo.models.components.vector_quantizer import VectorQuantizer
from facezoo.utils.errors import ConfigError

OUTPUTS = ("synthesis", "residual", "blend")


class RetouchFormer(FaceZooModule):
    LOSS_WEIGHTS = ("eta", "zeta", "lambda_conf", "adv", "perceptual")

    def __init__(
        self,
        encoder: MultiScaleEncoder,
        tokens: MultiScaleTokens,
        quant_conv: nn.Conv2d,
        quantizer: VectorQuantizer,
        reconstructor: ReconstructionDecoder,
        mask_net: UNetGenerator,
        transformer: SelectiveTransformer,
        decoder: SynthesisDecoder,
        discriminator: MaskInjectedDiscriminator,
        perceptual: dict | None = None,
        use_prior: bool = True,
        use_unpaired: bool = True,
        output: str = "synthesis",
        mu: float = 0.99,
        gan_loss: str = "vanilla",
        phi_threshold: float = 0.012,
        phi_scale: float = 0.12,
        mask_init_prob: float = 0.02,
        teacher_negatives: bool = False,
        conf_threshold: float = 0.0,
        name: str = "retouchformer",
        **base_args,
    ) -> None:
        super().__init__(**base_args)
        if output not in OUTPUTS:
            raise ConfigError(f"model.output={output!r}: expected one of {OUTPUTS}")
        if (quant_conv.in_channels, quant_conv.out_channels) != (encoder.channels[-1], quantizer.dim):
            raise ConfigError(
                f"model.quant_conv: {quant_conv.in_channels} -> {quant_conv.out_channels} channels, expected "
                f"the deepest encoder width {encoder.channels[-1]} -> the code width {quantizer.dim}"
            )
        # E; P, R
        self.encoder, self.tokens, self.quant_conv = encoder, tokens, quant_conv
        self.quantizer, self.reconstructor = quantizer, reconstructor
        # H, H̄: imperfections are rare, so H starts from σ(H) ≈ mask_init_prob everywhere (the
        # prior-probability bias init of Lin et al. 2017) instead of 0.5: the sparse mask is learned, not
        # unlearned
        self.mask_net = mask_net
        torch.nn.init.constant_(mask_net.head[-1].bias, math.log(mask_init_prob / (1 - mask_init_prob)))
        self.mask_teacher = self.make_ema(mask_net, mu)
        # T, G, D
        self.transformer, self.decoder, self.discriminator = transformer, decoder, discriminator
        if output != "synthesis":  # a correction of the input: start from "no change"
            torch.nn.init.zeros_(decoder.head.weight)
            torch.nn.init.zeros_(decoder.head.bias)
        # V: frozen VGG-19 (not saved in checkpoints); weight 0 switches the perceptual terms off
        self.vgg = PerceptualLoss(**(perceptual or {})) if self.loss_weights["perceptual"] > 0 else None

    # -- network groups ------------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, list[nn.Module]]:
        return {
            "prior": [self.quantizer, self.reconstructor],
            "mask": [self.mask_net],
            "generator": [self.encoder, self.tokens, self.quant_conv, self.transformer, self.decoder],
            "discriminator": [self.discriminator],
        }

    @property
    def size_multiple(self) -> int:  # both powers of two; attention windows pad the token grid themselves
        return max(self.encoder.stride, 2**self.mask_net.depth)

    # -- the forward pieces ---------------------------------------------------------------------------------
    def prior(self, feats: list[torch.Tensor], learn: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(R(E_ρ(image)), L_prior) from the image's encoder features E(image): the image redrawn from its
        nearest clean-face codes. Only with `learn` (retouched images, in training) may the dictionary update
        its statistics and re-seed dead codes."""
        was_training = self.quantizer.training
        self.quantizer.train(learn and self.training)
        try:
            vq = self.quantizer(self.quant_conv(feats[-1]))
        finally:
            self.quantizer.train(was_training)
        return self.reconstructor(vq["quantized"]), vq["loss"]

    def mask_input(self, image: torch.Tensor, redrawn: torch.Tensor) -> torch.Tensor:
        return torch.cat([image, redrawn if self.hparams.use_prior else image], dim=1)

    def synthesize(self, x: torch.Tensor, feats: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """ŷ from raw x, its encoder features E(x) and the soft imperfection mask σ(H̄) (B, 1, H, W)."""
        tokens = self.tokens(feats)
        weight = F.interpolate(mask, size=tokens.shape[-2:], mode="area").unsqueeze(1)
        out = self.decoder(feats, tokens, self.transformer(tokens, weight))
        if self.hparams.output == "residual":
            return x + out
        if self.hparams.output == "blend":
            return x + mask * out
        return out

    def teacher_mask(self, image: torch.Tensor, redrawn: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mask_teacher(self.mask_input(image, redrawn)))

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(lq)  # shared by the prior and the synthesis
        redrawn, _ = self.prior(feats)
        mask = self.teacher_mask(lq, redrawn)
        return {"image": self.synthesize(lq, feats, mask), "mask": mask, "prior": redrawn}

    def inference_networks(self) -> list[str]:
        return ["encoder", "quant_conv", "quantizer", "reconstructor", "mask_teacher", "tokens",
                "transformer", "decoder"]

    def phi(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """φ(x, y): the observed per-pixel difference as a soft mask in [0, 1]."""
        diff = (x - y).abs().amax(1, keepdim=True)
        return ((diff - self.hparams.phi_threshold) / self.hparams.phi_scale).clamp(0, 1)

    def consistency(self, target: torch.Tensor, pred: torch.Tensor, l1_weight: float) -> torch.Tensor:
        """w‖t − p‖₁ + ‖V(t) − V(p)‖² (L_con^rec with w = η, L_con^x2y with w = ζ)."""
        loss = l1_weight * F.l1_loss(pred, target)
        if self.vgg is not None:
            loss = loss + self.loss_weights["perceptual"] * self.vgg(pred, target)[0]
        return loss

    # -- training ----------------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        hp, w = self.hparams, self.loss_weights
        xa, ya = batch["paired"]["raw"], batch["paired"]["retouched"]
        xu = batch["unpaired_raw"]["raw"] if hp.use_unpaired and "unpaired_raw" in batch else None
        yu = (
            batch["unpaired_retouched"]["retouched"]
            if hp.use_unpaired and "unpaired_retouched" in batch
            else None
        )
        x = xa if xu is None else torch.cat([xa, xu])
        y = ya if yu is None else torch.cat([ya, yu])
        na = xa.shape[0]
        opt_prior, opt_mask, opt_g, opt_d = self.optimizers()

        # E(x) once for both steps: the mask step does not change E (its graph waits for step 2)
        feats_x = self.encoder(x)

        # 1. min_H L_H̄ + L_H, then θ_H̄ ← μ θ_H̄ + (1 − μ) θ_H
        with torch.no_grad():
            x_redrawn = self.prior([f.detach() for f in feats_x])[0]
        mask_in = self.mask_input(x, x_redrawn)
        logits = self.mask_net(mask_in)
        phi = self.phi(xa, ya)
        loss_hbar = F.mse_loss(torch.sigmoid(logits[:na]), phi)
        loss_conf = -(F.logsigmoid(logits[:na]) * (phi > hp.conf_threshold)).mean()
        if xu is not None:
            with torch.no_grad():
                target = torch.sigmoid(self.mask_teacher(mask_in[na:]))
            consistency = -(target * F.logsigmoid(logits[na:]))
            if hp.teacher_negatives:
                consistency = consistency - (1 - target) * F.logsigmoid(-logits[na:])
            loss_conf = loss_conf + w["lambda_conf"] * consistency.mean()
        self.step(opt_mask, loss_hbar + loss_conf)
        self.mask_teacher.update_parameters(self.mask_net)

        # 2. min_{P,R} L_prior + L_con^rec; min_{E,T,G} L_prior + L_con^rec + L_con^x2y + L_adv^syn
        with torch.no_grad():
            mask_x = self.teacher_mask(x, x_redrawn)
        y_hat = self.synthesize(x, feats_x, mask_x)
        y_redrawn, loss_prior = self.prior(self.encoder(y), learn=True)
        loss_rec = self.consistency(y, y_redrawn, w["eta"])
        loss_x2y = self.consistency(ya, y_hat[:na], w["zeta"])
        loss_adv = generator_loss(self.discriminator(y_hat, mask_x), hp.gan_loss)
        self.step([opt_prior, opt_g], loss_prior + loss_rec + loss_x2y + w["adv"] * loss_adv)

        # 3. max_D L_adv^disc: retouched → real; synthesis and raw input → fake
        with torch.no_grad():
            mask_y = self.teacher_mask(y, y_redrawn.detach())
        real = self.discriminator(y, mask_y)
        fake = self.discriminator(torch.cat([y_hat.detach(), x]), torch.cat([mask_x, mask_x]))
        loss_d = discriminator_loss(real, fake, hp.gan_loss)
        self.step(opt_d, loss_d)
        return {
            "mask_hbar": loss_hbar,
            "mask_conf": loss_conf,
            "prior": loss_prior,
            "rec": loss_rec,
            "x2y": loss_x2y,
            "g_adv": loss_adv,
            "d": loss_d,
        }
