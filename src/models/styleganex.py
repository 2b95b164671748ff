"""StyleGANEX (Yang et al., "StyleGANEX: StyleGAN-Based Manipulation Beyond Cropped Aligned Faces",
ICCV 2023): the encoder E of the joint W+ × F space trained against a frozen StyleGAN2 refactored with dilated
shallow layers (src/models/components/styleganex*.py), the official training/coach.py loop.

ONE module with a `task` switch, because the tasks differ only in the pairs they train on and in a few
options, never in the networks or the loop: every task trains the same encoder against the same frozen
decoder with the same losses, augmentation and D step (the official coach is one class for all of them, the
task chosen by `dataset_type` and flags). `inversion`: x → E(x, crop_face(x)) → y ≈ x (paper Sec. 4.2);
`sr`: x↑ = the HQ face shrunk by a factor of `resize_factors` and enlarged back, y = G(E(x↑, x↑, l)) at the
generator's own scale (Sec. 4.3; the README recipe takes w+ from x↑'s centred face too: `crop_face`). Issue 16
adds the translation and video tasks the same way.

Sizes. f is 1/8 of E's input and G makes (size/32)·|f|, so the output is r = size/256 times the input (4× for
the 1024 generator; a 256 generator keeps the size, a 64 one gives a quarter). In training the losses compare
the output and the target at the smaller of their sizes, the larger average-pooled (official `resize`: a
1024 model's inversion is pooled by 4 to x's size); `sr` makes x↑ at the target's size / r from the HQ image.

Data, made from the datamodule's HQ images on the device (the datamodule's own LQ is used only by evaluation):
- inversion: x = y = hq. sr: x↑ from hq by the official SuperResTransforms (bicubic, antialiased, down by a
  factor drawn per sample from `resize_factors`, relative to x↑; bilinear back up to x↑'s size), or with
  `blind_sr` GFP-GAN's degradation (datamodules/degradations) at the official ranges: blur 41, downsampling
  U[0.75·min, 1.5·max factor]·r of the HQ size, noise [0, 20], JPEG [60, 100], gray p 0.01 with the target
  gray too, no colour jitter; y = hq. The official quantises x to 8 bits (PIL); we do not.
- `crop_face`: the w+ codes come from the centre 256² of x (`crop_face`) taken before the augmentation: the
  aligned face, while f comes from the unaligned x (an image of at most 256 px is its own face).
- augmentation (`affine_augment`, `random_crop`): the ADA affine of datamodules/geometric.py with p 0.2, the
  same matrix for y; then one random crop per batch, sides U{32..40}·8 px of x (at most x's sides: images
  under 256 px are not cropped), y cropped at the same place × y/x.

Step order (coach.train): E and G forward; if `loss.adv` > 0 a D step FIRST: adv · (softplus(−D(y)) +
softplus(D(ŷ))), and every `r1_every` batches (0, 16, …) its own R1 step r1/2 · R1 · r1_every; D sees one
random D.size² window of y and of ŷ per call (the official D crops its input). Then the encoder step, Ranger
(conf/model/styleganex_inversion.yaml `optimizers`) on
    l2 · MSE(ŷ, y) + lpips · LPIPS_alex(ŷ, y) + id · (1 − cos IR-SE50(ŷ, y)) + w_norm · ‖w+ − latent_avg‖
    + adv · softplus(−D(ŷ)),
where ‖·‖ is official w_norm: the L2 norm of each sample's (n_latent, style_dim) codes minus latent_avg,
averaged over the batch; the identity crop is official's [35:223, 32:220] of a 256 image, scaled with the
image (`gpen_identity_crop`). A term whose weight is 0 is not computed. LPIPS (the module's `lpips_net`, alex
as official) and IR-SE50 need their files: `lpips_required` / `identity.required` refuse to start without
them, else the term is skipped with a warning. No EMA (the official has none).

The decoder is frozen (never trained, eval mode, outside DDP's gradients) and loaded when fitting starts from
`prior.checkpoint` (a facezoo model=stylegan2 checkpoint with add-noise, a rosinality `{'g_ema',
'latent_avg'}` file or a KNOWN_WEIGHTS key; weights/styleganex.py `load_styleganex_prior`), not when a run
resumes or starts from `init_from` (the file holds every weight). `latent_avg` (the module's buffer, added to
E's codes: official start_from_latent_avg) comes from the prior file, else the decoder's mean w over 10^5
codes drawn from a fixed seed (the same on every rank). `prior.required` refuses to start without the file.
The encoder starts, at the same moment, from `encoder_init.checkpoint` when set: the IR-SE50 face-recognition
body (official pSp without --checkpoint_path) or a StyleGANEX checkpoint's encoder (--checkpoint_path, e.g.
the inversion encoder that starts super-resolution; the fusion layers it lacks start fresh).

`restore(lq)`: eval, the decoder's stored noise (deterministic; the official draws fresh noise); inversion:
the reconstruction, resized to the input (pooled when larger); sr: lq is the degraded face at the output size
(the datamodule's LQ), E sees it resized by 1/r, and the output has the input's size.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import HQ
from facezoo.datamodules.degradations.pipeline import BlindDegradation
from facezoo.datamodules.geometric import sample_affine, warp
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.gan_regularizers import r1_penalty
from facezoo.losses.identity import IdentityLoss
from facezoo.metrics.lpips import BACKBONES
from facezoo.models.base import FaceZooModule
from facezoo.models.components.styleganex import StyleGANEXGenerator
from facezoo.models.components.styleganex_encoder import StyleGANEXEncoder, crop_face
from facezoo.models.gan import resize_to
from facezoo.models.identity_term import IdentityTermMixin
from facezoo.utils.errors import ConfigError, FacezooError, WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve, warn_random_init
from facezoo.weights.state_dict import load_state_dict, match_state_dict, sub_tree
from facezoo.weights.styleganex import load_styleganex_prior

log = logging.getLogger("facezoo")

TASKS = ("inversion", "sr")
FACE = 256  # the centred aligned face of crop_face, and the shortest random-crop side (coach)
CROP_STEPS = (32, 40)  # random crop sides U{32..40}·8 (coach `random_crop`)
AFFINE_P = 0.2  # coach: random_apply_affine(x, 0.2)
MEAN_LATENT_SAMPLES = 100_000  # coach: decoder.mean_latent(int(1e5)) when the prior has no latent_avg
MEAN_LATENT_SEED = 0
PRIOR_FILES = "a model=stylegan2 .ckpt (isconcat=false), a rosinality .pt with g_ema, or stylegan2_1024_ffhq"
ENCODER_FILES = "ir_se50 (model_ir_se50.pth), a StyleGANEX .ckpt or an official styleganex_*.pt"
IRSE50_PARTS = ("input_layer.", "body.")  # the IR-SE50 layers E shares (official pSp init, strict=False)


def pooled_to_match(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) at the smaller of their sizes: the larger one average-pooled (official `resize`)."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-1] > b.shape[-1]:
        return F.adaptive_avg_pool2d(a, b.shape[-2:]), b
    return a, F.adaptive_avg_pool2d(b, a.shape[-2:])


class StyleGANEX(IdentityTermMixin, FaceZooModule):
    LOSS_WEIGHTS = ("l2", "lpips", "id", "w_norm", "adv", "r1")

    def __init__(
        self,
        encoder: Callable[..., StyleGANEXEncoder],
        decoder: StyleGANEXGenerator,
        discriminator: nn.Module | None = None,
        task: str = "inversion",
        size: int = 1024,
        feat_ind: int = 0,
        crop_face: bool = True,
        resize_factors: Sequence[int] = (8,),
        blind_sr: bool = False,
        affine_augment: bool = True,
        random_crop: bool = True,
        prior: Mapping | None = None,
        encoder_init: Mapping | None = None,
        identity: Mapping | None = None,
        lpips_required: bool = False,
        loss_weights: Mapping[str, float] | None = None,
        r1_every: int = 16,
        latent_mask: Sequence[int] | None = None,
        name: str = "styleganex",
        **base_args,
    ) -> None:
        """`encoder`: a partial StyleGANEXEncoder, completed with the decoder's widths. `discriminator`: kept
        when loss.adv > 0 (else dropped with its optimizer). `feat_ind` (official first_layer_feature_ind): 0,
        f enters G's first layer; else f and E's RGB skip replace the first layer's outputs. See the module
        docstring for the rest."""
        if set(loss_weights or {}) != set(self.LOSS_WEIGHTS):
            raise ConfigError(f"model.loss_weights: StyleGANEX weighs {', '.join(self.LOSS_WEIGHTS)}; got "
                              f"{', '.join(loss_weights or {}) or 'none'}")
        super().__init__(loss_weights=loss_weights, **base_args)
        w = self.loss_weights
        if task not in TASKS:
            raise ConfigError(f"model.task={task}: expected one of {', '.join(TASKS)}")
        if decoder.size != size:
            raise ConfigError(f"model.size={size} but model.decoder builds a {decoder.size} px generator")
        factors = [int(f) for f in resize_factors]
        if not factors or min(factors) < 1:
            raise ConfigError(f"model.resize_factors={list(resize_factors)}: expected factors >= 1")
        self.task = task
        self.prior = {"checkpoint": None, "required": False, **(prior or {})}
        self.encoder_init = {"checkpoint": None, "required": False, **(encoder_init or {})}
        self._check_files(identity, lpips_required)  # before any network is built
        self.decoder = decoder.requires_grad_(False).eval()
        # load_model builds the injected networks on the meta device (lean): the encoder follows the decoder
        lean = next(decoder.parameters()).is_meta
        with torch.device("meta") if lean else nullcontext():
            self.encoder = encoder(decoder_channels=decoder.channels)
        style_dim = self.encoder.styles[0].linear.weight.shape[0]
        if style_dim != decoder.style_dim:
            raise ConfigError(
                f"model.encoder.style_dim={style_dim} but the decoder's style_dim is {decoder.style_dim}"
            )
        self.register_buffer("latent_avg", torch.zeros(decoder.n_latent, decoder.style_dim))
        # official default latent_mask "8,...,17" (the codes a second latent gives, of 18 at 1024 px); a
        # generator of at most 8 codes (32 px) takes its second half
        n = decoder.n_latent
        mask = range(8 if n > 8 else n // 2, n) if latent_mask is None else latent_mask
        self.latent_mask = [int(i) for i in mask]
        if not self.latent_mask or not all(0 <= i < n for i in self.latent_mask):
            raise ConfigError(f"model.latent_mask={list(mask)}: expected w+ code indices in 0..{n - 1}")
        if w["adv"] > 0 and discriminator is None:
            raise ConfigError(
                f"model.loss_weights.adv={w['adv']} needs model.discriminator (a StyleGAN2 D config)"
            )
        self.discriminator = discriminator if w["adv"] > 0 else None
        if self.discriminator is None:
            self.optimizer_factories.pop("discriminator", None)
        self.degradation = None
        if task == "sr" and blind_sr:  # configs/dataset_config.yml, downsample range × r (its `scale`)
            r = self.scale
            self.degradation = BlindDegradation(
                "gfpgan", color_jitter_prob=0.0, color_jitter_pt_prob=0.0, gray_prob=0.01, gt_gray=True,
                downsample_range=(0.75 * min(factors) * r, 1.5 * max(factors) * r),
            )

    def _check_files(self, identity: Mapping | None, lpips_required: bool) -> None:
        """The pretrained files: a required one missing stops the run before any data is prepared; an
        optional one missing skips its loss term, said when training starts."""
        w = self.loss_weights
        for option, node, files in (("prior", self.prior, PRIOR_FILES), ("encoder_init", self.encoder_init,
                                                                         ENCODER_FILES)):
            if node["checkpoint"] and node["required"]:
                self._weights_file(option, node, files)
            elif node["required"]:
                raise ConfigError(
                    f"StyleGANEX: model.{option}.required=true but no model.{option}.checkpoint: set it to "
                    f"<{files}>"
                )
        self.identity_loss: IdentityLoss | None = None
        self.identity_file = self.find_identity_file(identity) if w["id"] > 0 else None
        if w["lpips"] > 0 and self.lpips is None:
            net = self.hparams.lpips_net
            if net is None:
                raise ConfigError(
                    f"model.loss_weights.lpips={w['lpips']} needs model.lpips_net (alex, as official)"
                )
            # None means build_lpips found no backbone: say which file, or refuse when required
            resolve(BACKBONES[net], self.hparams.lpips_weights, required=lpips_required,
                    option="model.lpips_weights")
            self.training_note(
                f"StyleGANEX: LPIPS loss SKIPPED: {KNOWN_WEIGHTS[BACKBONES[net]].filename} not found "
                "(model.lpips_weights=PATH; model.lpips_required=true refuses to start instead)"
            )

    # -- sizes -----------------------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """r: output pixels per input pixel (f = 1/8 of E's input, G makes (size/32)·|f|)."""
        return self.decoder.size / 256

    @property
    def size_multiple(self) -> int:
        """Inversion: E's input sides are multiples of 8; sr: E sees the input resized by 1/r."""
        return 8 if self.task == "inversion" else max(1, int(8 * self.scale))

    @property
    def native_size(self) -> int:
        """The official aligned face: E reads 256 px (inversion: that face; sr: the output, r·256 px)."""
        return FACE if self.task == "inversion" else round(FACE * self.scale)

    def inference_networks(self) -> list[str]:
        return ["encoder", "decoder"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.decoder.eval()  # frozen: always as released
        return self

    # -- pretrained files ------------------------------------------------------------------------------
    @staticmethod
    def _weights_file(option: str, node: Mapping, files: str) -> Path:
        """The file of `model.<option>.checkpoint`: a KNOWN_WEIGHTS key (found by the resolver) or a path."""
        value = str(node["checkpoint"])
        if value in KNOWN_WEIGHTS:
            return resolve(value, option=f"model.{option}.checkpoint")
        path = Path(value).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"model.{option}.checkpoint={value}: file not found ({files})")
        return path

    @torch.no_grad()
    def mean_latent(self) -> torch.Tensor:
        """The decoder's mean w over 10^5 codes from a fixed seed, (n_latent, style_dim)."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(MEAN_LATENT_SEED)
            mean = self.decoder.mean_latent(MEAN_LATENT_SAMPLES)
        return mean.expand(self.decoder.n_latent, -1)

    def load_prior(self) -> None:
        """The decoder and latent_avg from `prior.checkpoint`; without one, a random decoder, said loudly."""
        latent = None
        if self.prior["checkpoint"]:
            path = self._weights_file("prior", self.prior, PRIOR_FILES)
            latent, _ = load_styleganex_prior(str(path), self.decoder)
        else:
            warn_random_init("StyleGANEX decoder (the StyleGAN2 prior; set model.prior.checkpoint)")
        self.latent_avg.copy_(self.mean_latent() if latent is None else latent)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # a resumed run restores every weight from its checkpoint, an init_from run has them from its file
        if self.trainer.ckpt_path is None and not getattr(self, "initialised_from", None):
            self.load_prior()
            self.load_encoder_init()

    def load_encoder_init(self) -> None:
        """The encoder from `encoder_init.checkpoint` (see conf/model/styleganex_inversion.yaml): the IR-SE50
        body (input layer and body; the rest of E keeps its init), or a StyleGANEX checkpoint's encoder (only
        fusion layers may be missing, e.g. an inversion encoder starting super-resolution). Any other
        missing, unexpected or mis-shaped key is an error."""
        if not self.encoder_init["checkpoint"]:
            return
        path = self._weights_file("encoder_init", self.encoder_init, ENCODER_FILES)
        state = load_state_dict(path)
        inner, own = state.get("state_dict"), self.encoder.state_dict()
        if isinstance(inner, Mapping):  # a StyleGANEX checkpoint, ours or official
            part = sub_tree(inner, "encoder.")
            kept = {k: v for k, v in own.items() if k not in part and k.startswith("fusion.")}
        else:  # IR-SE50 (its output layer is not E's; old files have no BatchNorm step counters)
            part = {k: v for k, v in state.items() if k.startswith(IRSE50_PARTS)}
            kept = {k: v for k, v in own.items() if k not in part
                    and (not k.startswith(IRSE50_PARTS) or k.endswith("num_batches_tracked"))}
        if not part:
            raise FacezooError(f"model.encoder_init.checkpoint={path}: no encoder weights ({ENCODER_FILES})")
        self.encoder.load_state_dict(match_state_dict({**kept, **part}, own, f"model.encoder_init {path}"))
        log.info("StyleGANEX: encoder initialised from %s (%d tensors)", path, len(part))

    # -- optimizers --------------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, nn.Module]:
        groups = {"encoder": self.encoder}
        if self.discriminator is not None:
            groups["discriminator"] = self.discriminator
        return groups

    def prepare_optimizer(self, group: str, optimizer: torch.optim.Optimizer) -> None:
        """betas as a tuple: pytorch_optimizer's Ranger keeps the config's list (an omegaconf ListConfig,
        which the weights_only checkpoints refuse), where torch's optimizers make it a tuple."""
        for param_group in optimizer.param_groups:
            if "betas" in param_group:
                param_group["betas"] = tuple(float(b) for b in param_group["betas"])

    # -- the networks ----------------------------------------------------------------------------------
    def face_of(self, x: torch.Tensor) -> torch.Tensor:
        """The face E takes w+ from: x's centred 256² (`crop_face`), or x itself (also when no larger)."""
        return crop_face(x, FACE) if self.hparams.crop_face and max(x.shape[-2:]) > FACE else x

    def generate(
        self,
        x: torch.Tensor,
        face: torch.Tensor,
        randomize_noise: bool,
        inject: torch.Tensor | None = None,
        editing_w: torch.Tensor | None = None,
        zero_noise: bool = False,
    ):
        """G(E(x, face)) → (image, r·|x|; the codes w+ − latent_avg). face is x: E reads it once.

        `inject` (B, n_latent, style_dim), official `inject_latent` (used as is: no latent_avg is added): the
        codes of `latent_mask` are taken from it (sketch / mask-to-face: E_w^{8:18}(ỹ), the multi-modal
        style). `editing_w` v (B or 1, n_latent, style_dim): w+ + v (video face editing). `zero_noise`: no
        noise at all (official zero_noise, video inference: a noise map fixed to the frame would stay put
        while the face moves), over `randomize_noise`."""
        out = self.encoder(x, None if face is x else face)
        codes = out.w_plus + self.latent_avg
        if inject is not None:
            codes[:, self.latent_mask] = inject[:, self.latent_mask]
        fusion = None if self.encoder.fusion is None else list(self.encoder.fusion)
        image, _ = self.decoder(
            [codes],
            input_is_latent=True,
            randomize_noise=randomize_noise,
            noise=[codes.new_zeros(1, 1, 1, 1)] * self.decoder.num_layers if zero_noise else None,
            first_layer_feature=out.f,
            first_layer_rgb=out.f_rgb if self.hparams.feat_ind else None,
            skip_features=None if fusion is None else list(out.skips),
            fusion=fusion,
            editing_w=editing_w,
        )
        return image, out.w_plus

    def encoder_input(self, lq: torch.Tensor) -> torch.Tensor:
        """sr: E sees the face at 1/r of the output size; inversion: as it is."""
        if self.task == "inversion":
            return lq
        h, w = lq.shape[-2:]
        return resize_to(lq, (round(h / self.scale), round(w / self.scale)))

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.encoder_input(lq)
        image, _ = self.generate(x, self.face_of(x), randomize_noise=False)
        if image.shape[-1] > lq.shape[-1]:
            image = F.adaptive_avg_pool2d(image, lq.shape[-2:])
        return {"image": resize_to(image, lq.shape[-2:])}

    # -- training data -----------------------------------------------------------------------------------
    def super_resolution_pair(self, hq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x↑, y) from HQ faces (see the module docstring): x↑ at |hq| / r, y = hq (gray where blind SR
        made x gray)."""
        h, w = hq.shape[-2:]
        size = (h / self.scale, w / self.scale)
        if size[0] % 8 or size[1] % 8:
            raise ConfigError(
                f"StyleGANEX sr: {h}x{w} HQ faces give {size[0]:g}x{size[1]:g} encoder inputs (HQ / "
                f"{self.scale:g}); expected multiples of 8: use HQ sides divisible by {8 * self.scale:g}"
            )
        size = (int(size[0]), int(size[1]))
        if self.degradation is not None:
            out = self.degradation(hq, seed=int(torch.randint(2**62, ())))
            return resize_to(out["lq"], size), out["hq"]
        factors = torch.tensor(self.hparams.resize_factors)
        chosen = factors[torch.randint(len(factors), (hq.shape[0],))].to(hq.device)
        x = hq.new_empty(hq.shape[0], hq.shape[1], *size)
        for factor in chosen.unique().tolist():  # at most len(resize_factors) groups
            index = torch.nonzero(chosen == factor).squeeze(1)
            small = (max(1, size[0] // factor), max(1, size[1] // factor))
            lr = F.interpolate(hq[index], size=small, mode="bicubic", antialias=True, align_corners=False)
            x[index] = F.interpolate(lr.clamp(-1, 1), size=size, mode="bilinear", align_corners=False)
        return x, hq

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The coach's affine (same matrices for y) and random crop (one per batch; y at y/x the offsets)."""
        if self.hparams.affine_augment:
            matrices = sample_affine(x.shape[0], AFFINE_P, pixels=x.shape[-1], device=x.device)
            x, y = warp(x, matrices), warp(y, matrices)
        if not self.hparams.random_crop:
            return x, y
        ratio = y.shape[-1] / x.shape[-1]
        step = max(1, round(1 / ratio))  # offsets on whole pixels of both images
        (h, w), box = x.shape[-2:], []
        for side in (h, w):
            low, high = (min(s, side // 8) for s in CROP_STEPS)
            crop = 8 * int(torch.randint(low, high + 1, ()))
            box.append((step * int(torch.randint((side - crop) // step + 1, ())), crop))
        (i, th), (j, tw) = box
        if (th, tw) == (h, w):
            return x, y
        y_box = [round(v * ratio) for v in (i, i + th, j, j + tw)]
        return x[..., i : i + th, j : j + tw], y[..., y_box[0] : y_box[1], y_box[2] : y_box[3]]

    def discriminator_view(self, images: torch.Tensor) -> torch.Tensor:
        """One random D.size² window of a batch (the official D crops its input)."""
        s, (h, w) = self.discriminator.size, images.shape[-2:]
        if h < s or w < s:
            raise ConfigError(
                f"StyleGANEX: model.discriminator.size={s} but the outputs it judges are {h}x{w}; lower "
                "it or train on larger images"
            )
        i, j = int(torch.randint(h - s + 1, ())), int(torch.randint(w - s + 1, ()))
        return images[..., i : i + s, j : j + s]

    # -- training --------------------------------------------------------------------------------------
    def discriminator_step(self, opt_d, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """adv · (softplus(−D(y)) + softplus(D(ŷ))), then on R1 batches r1/2 · R1 · r1_every (own step)."""
        w, D = self.loss_weights, self.discriminator
        view = self.discriminator_view
        loss = discriminator_loss(D(view(real)), D(view(fake)), "softplus")
        self.step(opt_d, w["adv"] * loss)
        logs = {"d": loss.detach()}
        every = self.hparams.r1_every
        if w["r1"] > 0 and every > 0 and int(self.batch_counter) % every == 0:
            crop = view(real).detach().requires_grad_(True)
            logits = D(crop)
            logs["r1"] = r1_penalty(logits, crop)
            self.step(opt_d, w["r1"] / 2 * logs["r1"] * every + 0 * logits[0].sum())
            logs["r1"] = logs["r1"].detach()
        return logs

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        w = self.loss_weights
        hq = batch[HQ]
        x, y = (hq, hq) if self.task == "inversion" else self.super_resolution_pair(hq)
        face = self.face_of(x)  # aligned: before the augmentation (coach)
        x, y = self.augment(x, y)
        optimizers = self.optimizers()
        opt_e, *opt_d = optimizers if isinstance(optimizers, list) else [optimizers]
        y_hat, codes = self.generate(x, face, randomize_noise=True)
        y_hat, y = pooled_to_match(y_hat, y)
        logs = self.discriminator_step(opt_d[0], y, y_hat.detach()) if self.discriminator is not None else {}

        logs["l2"] = F.mse_loss(y_hat, y)
        loss = w["l2"] * logs["l2"]
        if w["lpips"] > 0 and self.lpips is not None:
            logs["lpips"] = self.lpips.frozen(y_hat, y).mean()
            loss = loss + w["lpips"] * logs["lpips"]
        identity = self.identity() if w["id"] > 0 else None
        if identity is not None:
            logs["id"] = identity(y_hat, y)
            loss = loss + w["id"] * logs["id"]
        if w["w_norm"] > 0:
            logs["w_norm"] = codes.flatten(1).norm(dim=1).mean()
            loss = loss + w["w_norm"] * logs["w_norm"]
        if self.discriminator is not None:
            logs["g_adv"] = generator_loss(self.discriminator(self.discriminator_view(y_hat)), "softplus")
            loss = loss + w["adv"] * logs["g_adv"]
        self.step(opt_e, loss)
        logs["loss"] = loss.detach()
        return {k: v.detach() for k, v in logs.items()}

