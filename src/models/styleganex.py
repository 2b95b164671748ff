"""StyleGANEX (Yang et al., "StyleGANEX: StyleGAN-Based Manipulation Beyond Cropped Aligned Faces",
ICCV 2023): the encoder E of the joint W+ × F space trained against a frozen StyleGAN2 refactored with dilated
shallow layers (src/models/components/styleganex*.py), the official training/coach.py loop.

ONE module with a `task` switch, because the tasks differ only in the pairs they train on and in a few
options, never in the networks or the loop: every task trains the same encoder against the same frozen
decoder with the same losses, augmentation and D step (the official coach is one class for all of them, the
task chosen by `dataset_type` and flags). `inversion`: x → E(x, crop_face(x)) → y ≈ x (paper Sec. 4.2);
`sr`: x↑ = the HQ face shrunk by a factor of `resize_factors` and enlarged back, y = G(E(x↑, x↑, l)) at the
generator's own scale (Sec. 4.3; the README recipe takes w+ from x↑'s centred face too: `crop_face`); the
video tasks (Sec. 4.4, official `ffhq_edit` / `toonify`) below.

Video tasks. `edit`: the pairs come from the decoder G as the coach's `generate_training_data`: z ~ N(0, I),
ws = G's mapping of z on every code, plus one random augmentation direction per sample (`editing.augment`,
official direction_path); x = G(ws) with truncation `editing.truncation` (0.75) towards 0 (0.75·ws, as
written) and G's stored noise, brought to the batch's face size (official: pooled by 4, 1024 → 256);
v = `editing_w` (the buffer, from `editing.direction`, official editing_w_path) × one scale per batch drawn
from `editing.scales` (official {0, 0.25, …, 1.25}); y = G(ws + v) at G's size. ŷ = G(E(x, face) + v) with v
also the condition of the fusion layers' attention (model.encoder.use_att). The batch's images only set the
batch size. `restore`/`predict` edit with v = editing_w × `editing.scale` (official video_editing.py
scale_factor). `toonify`: the decoder is G′, a StyleGAN2 fine-tuned on a cartoon domain
(`toonify.checkpoint`, official toonify_weights: loaded over the prior when fitting starts; latent_avg stays
the face prior's), ŷ = G′(E(x, face)); y = the cartoon filter (datamodules/toon.py) of x at the output size,
made on the device (`toonify.pairs: filter`; evaluation compares with the same filter of the face), or with
`pairs: folders` the datamodule's pairs (datamodule=translation_folder labels=image: the official folders of
faces, toonify_in, and their Toonify renderings, toonify_out), x = the face at 1/r of its rendering's size.
L_tmp (`loss.tmp`, official tmp_lambda, any task): from batch t with 2t ≥ T (T = the run's batches), the
flicker-suppression loss: y0_hat = G(E(x)) of the UNaugmented x (with gradient), moved by the same affine and
crop as x and y (`augment`), and tmp · min(1, 4(t/T − 0.5)) · MSE(ŷ, y0_hat) added to the encoder's loss.

Translation. `sketch2face` / `mask2face` (Sec. 4.4, official use_latent_mask): x = a sketch (1 channel) or a
19-class one-hot parsing map, read from the datamodule's `lq` (datamodules/translation.py: the label map's
picture), goes through the translation network T in place of E's input layer (`encoder.label_nc` 1 / 19,
l = 1 / 3: skip_max_layer 1 / 2); ŷ = G(E_F(T(x), l), w+), w+ = E_w(T(x)) + latent_avg except the codes of
`latent_mask`, which are E_w(ỹ) without latent_avg (official inject_latent): ỹ = y (the face, official 320²
as x) resized to x's size (bilinear) and, with `crop_face`, its centred 256² taken before the augmentation
(else ỹ is y after it). So one label map gives many faces, one per style (multi-modal). w_norm is then on
those mixed codes − latent_avg (official: the latent G returns).

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
(the datamodule's LQ), E sees it resized by 1/r, and the output has the input's size. Translation: lq is the
label map's picture; the codes of `latent_mask` come from `restore(lq, inject=codes)` (`random_styles(n)`:
image_translation.py's 0.7 · mapping(z), one w for all codes), else from `style=faces` (E_w of those faces,
what evaluation passes: the targets, as the official validation injects E(ỹ)), else latent_avg (the mean
style). E's BatchNorm (T's and the body's) normalises each input by its own statistics
(`per_sample_statistics`), as image_translation.py runs the network in train() mode on one input: the
body's running statistics mix the two kinds of input it sees in training (T's features of label maps and
input_layer's of the RGB ỹ), so with them (eval mode) neither kind is normalised as it was trained. The
running statistics are left as they are; an output depends on its input only, not on the batch.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import HQ, LQ
from facezoo.datamodules.degradations.pipeline import BlindDegradation
from facezoo.datamodules.geometric import sample_affine, warp
from facezoo.datamodules.toon import cartoon
from facezoo.datamodules.translation import parsing_input, sketch_input
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.losses.gan_regularizers import r1_penalty
from facezoo.losses.identity import IdentityLoss
from facezoo.metrics.lpips import BACKBONES
from facezoo.models.base import FaceZooModule
from facezoo.models.components.styleganex import StyleGANEXGenerator
from facezoo.models.components.styleganex_encoder import StyleGANEXEncoder, crop_face
from facezoo.models.editing import load_direction
from facezoo.models.gan import resize_to
from facezoo.models.identity_term import IdentityTermMixin
from facezoo.utils.errors import ConfigError, FacezooError, WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve, warn_random_init
from facezoo.weights.state_dict import load_state_dict, match_state_dict, sub_tree
from facezoo.weights.styleganex import load_styleganex_prior

log = logging.getLogger("facezoo")

TRANSLATION = {"sketch2face": sketch_input, "mask2face": parsing_input}  # task → T's input from `lq`
LABEL_NC = {"sketch2face": 1, "mask2face": 19}  # official input_nc / label_nc
STYLE_SCALE = 0.7  # image_translation.py: inject_latent = mapping(z) · 0.7
TASKS = ("inversion", "sr", "edit", "toonify", *TRANSLATION)
# E reads the input as it is (sr: at 1/r of the output)
SAME_SIZE_INPUT = ("inversion", "edit", "toonify", *TRANSLATION)
EDITING = {"direction": None, "augment": (), "scales": (0.0, 0.25, 0.5, 0.75, 1.0, 1.25), "truncation": 0.75,
           "scale": 1.0, "required": False}  # coach generate_training_data; video_editing.py scale_factor
TOONIFY = {"checkpoint": None, "required": False, "pairs": "filter"}
TOONIFY_PAIRS = ("filter", "folders")
DIRECTION_SEED = 0  # the random v of an edit model without editing.direction (tests, the contract suite)
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


@contextmanager
def per_sample_statistics(module: nn.Module):
    """Inside, every BatchNorm2d of `module` normalises each sample by that sample's own statistics (what
    BatchNorm does in training on a batch of one: the instance norm with BatchNorm's affine), so a batch gives
    what its samples give one at a time; the running statistics (and counters) are left as they are."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.forward = partial(_instance_norm, m)
    try:
        yield
    finally:
        for m in norms:
            del m.forward


def _instance_norm(norm: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps)


class StyleGANEX(IdentityTermMixin, FaceZooModule):
    LOSS_WEIGHTS = ("l2", "lpips", "id", "w_norm", "adv", "r1", "tmp")

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
        inject_latent_avg: bool = False,
        editing: Mapping | None = None,
        toonify: Mapping | None = None,
        name: str = "styleganex",
        **base_args,
    ) -> None:
        """`encoder`: a partial StyleGANEXEncoder, completed with the decoder's widths. `discriminator`: kept
        when loss.adv > 0 (else dropped with its optimizer). `feat_ind` (official first_layer_feature_ind): 0,
        f enters G's first layer; else f and E's RGB skip replace the first layer's outputs. See the module
        docstring for the rest."""
        if loss_weights is not None:  # L_tmp (official tmp_lambda, default 0): configs may leave it out
            loss_weights = {"tmp": 0.0, **loss_weights}
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
        self.editing = {**EDITING, **(editing or {})}
        self.toonify = {**TOONIFY, **(toonify or {})}
        self._check_video_options(task)
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
        if task in TRANSLATION and self.encoder.label_nc != LABEL_NC[task]:
            raise ConfigError(f"model.encoder.label_nc={self.encoder.label_nc}: {task} reads "
                              f"{LABEL_NC[task]}-channel label maps (official input_nc {LABEL_NC[task]})")
        self.register_buffer("latent_avg", torch.zeros(decoder.n_latent, decoder.style_dim))
        if task == "edit":  # v, saved with the model (official ckpt['editing_w']); loaded when fitting starts
            self.register_buffer("editing_w", torch.zeros(decoder.n_latent, decoder.style_dim))
        self.augment_directions: torch.Tensor | None = None  # (N, n_latent, style_dim): at every fit start
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

    def _check_video_options(self, task: str) -> None:
        """The edit / toonify options that need no file: a bad one stops the run at once."""
        scales = list(self.editing["scales"])
        if task == "edit" and not scales:
            raise ConfigError("model.editing.scales=[]: expected the scales of v (official 0, 0.25, …, 1.25)")
        if task == "toonify" and self.toonify["pairs"] not in TOONIFY_PAIRS:
            raise ConfigError(
                f"model.toonify.pairs={self.toonify['pairs']}: expected filter (y = the cartoon filter of x, "
                "datamodules/toon.py) or folders (the datamodule's pairs: datamodule=translation_folder "
                "labels=image, the official toonify_in / toonify_out)"
            )
        required = {"edit": ("editing", self.editing, ("direction", "augment")),
                    "toonify": ("toonify", self.toonify, ("checkpoint",))}.get(task)
        if required and required[1]["required"]:
            option, node, keys = required
            missing = [k for k in keys if not node[k]]
            if missing:
                raise ConfigError(
                    f"StyleGANEX {task}: model.{option}.required=true but no model.{option}."
                    f"{' / '.join(missing)}: set {'it' if len(missing) == 1 else 'them'} (official "
                    f"{'editing_w_path / direction_path' if task == 'edit' else 'toonify_weights'})"
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
        return 8 if self.task in SAME_SIZE_INPUT else max(1, int(8 * self.scale))

    @property
    def native_size(self) -> int:
        """The official aligned face: E reads 256 px (inversion: that face; sr: the output, r·256 px)."""
        return FACE if self.task in SAME_SIZE_INPUT else round(FACE * self.scale)

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
            self.load_video_task_files()
        labels = getattr(self.trainer.datamodule, "labels", None)
        if self.task == "toonify" and self.toonify["pairs"] == "folders" and labels != "image":
            raise ConfigError(
                "model.toonify.pairs=folders trains on the datamodule's (face, Toonify rendering) pairs: use "
                "datamodule=translation_folder datamodule.labels=image (data_dir: the renderings, label_dir: "
                f"the faces); got {type(self.trainer.datamodule).__name__}"
                + (f" with labels={labels}" if labels else "")
            )
        if self.task == "edit" and self.editing["augment"]:  # data, not weights: read at every start
            n, dim = self.decoder.n_latent, self.decoder.style_dim
            self.augment_directions = torch.stack(
                [load_direction(path, n, dim) for path in self.editing["augment"]]
            ).to(self.latent_avg.device)

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
        if isinstance(inner, Mapping):  # a StyleGANEX checkpoint, ours or official (T fresh when it lacks it)
            part = sub_tree(inner, "encoder.")
            fresh = ("fusion.", "input_label_layer.")
            kept = {k: v for k, v in own.items() if k not in part and k.startswith(fresh)}
        else:  # IR-SE50 (its output layer is not E's; old files have no BatchNorm step counters)
            # official pSp: an encoder of label maps takes no input_layer (T replaces it)
            shared = IRSE50_PARTS[1:] if self.encoder.label_nc else IRSE50_PARTS
            part = {k: v for k, v in state.items() if k.startswith(shared)}
            kept = {k: v for k, v in own.items() if k not in part
                    and (not k.startswith(shared) or k.endswith("num_batches_tracked"))}
        if not part:
            raise FacezooError(f"model.encoder_init.checkpoint={path}: no encoder weights ({ENCODER_FILES})")
        self.encoder.load_state_dict(match_state_dict({**kept, **part}, own, f"model.encoder_init {path}"))
        log.info("StyleGANEX: encoder initialised from %s (%d tensors)", path, len(part))

    def load_video_task_files(self) -> None:
        """toonify: G′ over the decoder (`toonify.checkpoint`; the face prior's latent_avg stays); edit: v
        (`editing.direction`), else a random unit W direction from a fixed seed, said loudly."""
        if self.task == "toonify":
            if self.toonify["checkpoint"]:
                path = self._weights_file("toonify", self.toonify, PRIOR_FILES)
                load_styleganex_prior(str(path), self.decoder)
                log.info("StyleGANEX toonify: the decoder is G' from %s", path)
            else:
                warn_random_init("StyleGANEX toonify G' (the decoder stays the face prior: set "
                                 "model.toonify.checkpoint)")
        if self.task != "edit":
            return
        n, dim = self.decoder.n_latent, self.decoder.style_dim
        if self.editing["direction"]:
            self.editing_w.copy_(load_direction(self.editing["direction"], n, dim))
            return
        warn_random_init("StyleGANEX editing direction v (set model.editing.direction)")
        direction = torch.randn(dim, generator=torch.Generator().manual_seed(DIRECTION_SEED))
        self.editing_w.copy_((direction / direction.norm()).expand(n, dim))

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

    def editing_vector(self, scale: float | None = None) -> torch.Tensor | None:
        """v = editing_w × scale (default `editing.scale`), (1, n_latent, style_dim); None but for edit."""
        if self.task != "edit":
            return None
        return self.editing_w[None] * (self.editing["scale"] if scale is None else scale)

    def encoder_input(self, lq: torch.Tensor) -> torch.Tensor:
        """sr: E sees the face at 1/r of the output size; the other tasks: as it is."""
        if self.task in TRANSLATION:  # T's input, read from the label map's picture
            return TRANSLATION[self.task](lq)
        if self.task in SAME_SIZE_INPUT:
            return lq
        h, w = lq.shape[-2:]
        return resize_to(lq, (round(h / self.scale), round(w / self.scale)))

    def predict(self, lq: torch.Tensor, style: torch.Tensor | None = None,
                inject: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Translation: latent_mask's codes from `inject`, else E_w(`style`), else latent_avg (docstring)."""
        x = self.encoder_input(lq)
        if self.task in TRANSLATION:  # BatchNorm by each input's own statistics (module docstring)
            with per_sample_statistics(self.encoder):
                if inject is None:
                    mean = self.latent_avg[None].expand(len(x), -1, -1)
                    inject = mean if style is None else self.style_of(style, x)
                image, _ = self.generate(x, x, randomize_noise=False, inject=inject)
        else:
            v = self.editing_vector()
            image, _ = self.generate(x, self.face_of(x), randomize_noise=False, editing_w=v)
        if image.shape[-1] > lq.shape[-1]:
            image = F.adaptive_avg_pool2d(image, lq.shape[-2:])
        return {"image": resize_to(image, lq.shape[-2:])}

    def evaluation_pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """toonify with `pairs: filter`: the target is the cartoon filter of the face (what it trains on)."""
        lq, target, mask = super().evaluation_pair(batch)
        if self.task == "toonify" and self.toonify["pairs"] == "filter":
            target = cartoon(target)
        return lq, target, mask

    def evaluation_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """Translation: the targets' styles (the official validation injects E(ỹ))."""
        return {"style": batch[HQ]} if self.task in TRANSLATION else {}

    # -- translation -------------------------------------------------------------------------------------
    def style_of(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """E_w(ỹ), the codes latent_mask takes (official inject_latent = encoder(ỹ): no latent_avg): ỹ = the
        RGB faces y resized (bilinear) to the label maps x's size, then `face_of` (crop_face). With
        `inject_latent_avg`, + latent_avg, as E's own codes (for an encoder that starts from another task's,
        whose codes are offsets from latent_avg; the official starts from IR-SE50, style blocks fresh)."""
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        codes = self.encoder.w_plus(self.encoder.body_features(self.face_of(y)))
        return codes + self.latent_avg if self.hparams.inject_latent_avg else codes

    def random_styles(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n random styles (n, n_latent, style_dim), the official multi-modal inference: 0.7 · mapping(z),
        z ~ N(0, I) (drawn on the CPU: the same on any device), one w repeated over the codes."""
        z = torch.randn(n, self.decoder.style_dim, generator=generator).to(self.latent_avg)
        with torch.no_grad():
            w = self.decoder.style(z)
        return (STYLE_SCALE * w).unsqueeze(1).expand(-1, self.decoder.n_latent, -1)

    # -- training data -----------------------------------------------------------------------------------
    def training_pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x, y, v) of a batch: E's input, the target and the editing vector (edit only, else None)."""
        hq = batch[HQ]
        if self.task in TRANSLATION:  # x: T's input from the label maps' pictures, y: their faces
            return self.encoder_input(batch[LQ]), hq, None
        if self.task == "sr":
            return (*self.super_resolution_pair(hq), None)
        if self.task == "edit":
            return self.editing_pair(hq)
        if self.task == "toonify":
            return (*self.toonify_pair(hq, batch.get(LQ)), None)
        return hq, hq, None

    @torch.no_grad()
    def editing_pair(self, hq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, v) drawn from G (see the module docstring): x at hq's size, y at G's, v (1, n_latent,
        style_dim). hq sets only the batch size, device and x's size."""
        n, dim = self.decoder.n_latent, self.decoder.style_dim
        ws = self.decoder.get_latent(torch.randn(len(hq), dim, device=hq.device))[:, None].expand(-1, n, -1)
        if self.augment_directions is not None:
            ws = ws + self.augment_directions[torch.randint(len(self.augment_directions), (len(hq),))]
        scales = self.editing["scales"]
        v = self.editing_vector(float(scales[int(torch.randint(len(scales), ()))]))

        def draw(editing_w):
            return self.decoder([ws], input_is_latent=True, truncation=self.editing["truncation"],
                                truncation_latent=ws.new_zeros(()), randomize_noise=False,
                                editing_w=editing_w)[0]

        x, y = draw(None), draw(v)
        side = hq.shape[-2:]
        x = F.adaptive_avg_pool2d(x, side) if x.shape[-1] > side[-1] else resize_to(x, side)
        return x, y, v

    @torch.no_grad()
    def toonify_pair(self, hq: torch.Tensor, lq: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(x, y). `pairs: filter`: x = hq (E's input), y = the cartoon filter of hq at the output size
        (r·|x|; pooled first when smaller, filtered at hq's size and left for the loss to compare when
        larger). `pairs: folders`: x = lq (the face), resized to |hq| / r, y = hq (its Toonify rendering; the
        official 256 px faces and 1024 px renderings)."""
        if self.toonify["pairs"] == "folders":
            size = (round(hq.shape[-2] / self.scale), round(hq.shape[-1] / self.scale))
            return resize_to(lq, size), hq
        out = (round(hq.shape[-2] * self.scale), round(hq.shape[-1] * self.scale))
        return hq, cartoon(F.adaptive_avg_pool2d(hq, out) if out[-1] < hq.shape[-1] else hq)

    def temporal_weight(self) -> float | None:
        """The weight of L_tmp at this batch: None before half of the run (not computed), then tmp · min(1,
        4(t/T − 0.5)) (coach calc_loss: 0 at half, tmp from three quarters)."""
        tmp = self.loss_weights["tmp"]
        step, total = int(self.batch_counter), self.run_iterations()
        if tmp <= 0 or 2 * step < total:
            return None
        return tmp * min(1.0, 4.0 * (step / total - 0.5))

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

    def augment(self, x: torch.Tensor, y: torch.Tensor, *outputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The coach's affine (same matrices for y and `outputs`, e.g. L_tmp's y0_hat) and random crop (one
        per batch; y and `outputs` at their size / x's the offsets) → (x, y, *outputs)."""
        others = (y, *outputs)
        if self.hparams.affine_augment:
            matrices = sample_affine(x.shape[0], AFFINE_P, pixels=x.shape[-1], device=x.device)
            x, others = warp(x, matrices), [warp(o, matrices) for o in others]
        if not self.hparams.random_crop:
            return (x, *others)
        ratios = [o.shape[-1] / x.shape[-1] for o in others]
        step = max(1, round(1 / min(ratios)))  # offsets on whole pixels of every image
        (h, w), box = x.shape[-2:], []
        for side in (h, w):
            low, high = (min(s, side // 8) for s in CROP_STEPS)
            crop = 8 * int(torch.randint(low, high + 1, ()))
            box.append((step * int(torch.randint((side - crop) // step + 1, ())), crop))
        (i, th), (j, tw) = box
        if (th, tw) == (h, w):
            return (x, *others)
        crops = []
        for image, ratio in zip(others, ratios, strict=True):
            top, bottom, left, right = (round(v * ratio) for v in (i, i + th, j, j + tw))
            crops.append(image[..., top:bottom, left:right])
        return x[..., i : i + th, j : j + tw], *crops

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
        x, y, v = self.training_pair(batch)
        translation = self.task in TRANSLATION  # w+ of the label map x itself (x2 None), latent_mask's of ỹ
        face = x if translation else self.face_of(x)  # aligned: before the augmentation (coach)
        inject = self.style_of(y, x) if translation and self.hparams.crop_face else None  # ỹ aligned, too
        tmp = self.temporal_weight()
        # L_tmp: the output of the unmoved x, moved afterwards by the same draws as x and y
        y0_hat = [] if tmp is None else [self.generate(x, face, True, inject=inject, editing_w=v)[0]]
        x, y, *y0_hat = self.augment(x, y, *y0_hat)
        if translation:
            face, inject = x, self.style_of(y, x) if inject is None else inject
        optimizers = self.optimizers()
        opt_e, *opt_d = optimizers if isinstance(optimizers, list) else [optimizers]
        y_hat, codes = self.generate(x, face, randomize_noise=True, inject=inject, editing_w=v)
        temporal = F.mse_loss(y_hat, y0_hat[0]) if y0_hat else None  # at the output's size (coach)
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
            if inject is not None:  # official: on the codes G drew from, latent_mask's E_w(ỹ) as they are
                codes = codes.clone()
                codes[:, self.latent_mask] = inject[:, self.latent_mask] - self.latent_avg[self.latent_mask]
            logs["w_norm"] = codes.flatten(1).norm(dim=1).mean()
            loss = loss + w["w_norm"] * logs["w_norm"]
        if self.discriminator is not None:
            logs["g_adv"] = generator_loss(self.discriminator(self.discriminator_view(y_hat)), "softplus")
            loss = loss + w["adv"] * logs["g_adv"]
        if temporal is not None:
            logs["tmp"] = temporal
            loss = loss + tmp * temporal
        self.step(opt_e, loss)
        logs["loss"] = loss.detach()
        return {k: v.detach() for k, v in logs.items()}

