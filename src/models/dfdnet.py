"""DFDNet (Li et al., "Blind Face Restoration via Deep Multi-scale Component Dictionaries", ECCV 2020).

The official release is test-only; the training objective is the paper's Sec. 3.3:
- reconstruction: λ_l2·‖Î − I_h‖² + Σ_m λ_p,m/(C_m H_m W_m)·‖ψ_m(Î) − ψ_m(I_h)‖², ψ_m the features of the
  network's own frozen VGG-19 (the paper's "VggFace", the encoder the dictionaries were built with) at the
  four dictionary layers relu2_2, relu3_4, relu4_4, conv5_4 (the paper does not name its layers m: a guess,
  `perceptual_layers`); `loss_weights.perceptual` × `perceptual_layers[m]` is λ_p,m;
- adversarial: R discriminators D_r on the image down-sampled r times (`MultiScaleDiscriminator`, spectral
  norm), the hinge loss: D minimises Σ_r E[max(0, 1 − D_r(I_h↓r))] + E[max(0, 1 + D_r(Î↓r))], G adds
  −Σ_r λ_a,r·E[D_r(Î↓r)] (`loss_weights.adversarial` × `adversarial_scales[r]` is λ_a,r).
The dictionaries are fixed during training (buffers of the generator, saved with it): built first with
`facezoo-dfdnet-dictionary` (or the official ones), loaded from `dictionary` when a run starts (not when it
resumes: the checkpoint holds them). With `build_dictionary` (the options of facezoo-dfdnet-dictionary,
conf/dfdnet_dictionary.yaml) a missing `dictionary` file is built first, by the same code, from the faces it
names (the CPU recipe: its own train split), on rank 0 while the other ranks wait.

Step order per batch: G step, then the R discriminators (one optimizer over all of them: Adam keeps
per-parameter state, so this equals R optimizers with the same settings), then the generator EMA when
`ema_decay` > 0.

Part boxes: the batch's `boxes` (the batch contract: left eye, right eye, nose, mouth, pixels) in training
and evaluation; `restore(lq)` without boxes uses the canonical boxes of an aligned face
(`dfdnet_parts.template_boxes`). Input contract: square or not, sides multiples of 32.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facezoo.datamodules.batch import BOXES, eval_pair
from facezoo.losses.adversarial import discriminator_loss, generator_loss
from facezoo.models.base import FaceZooModule
from facezoo.models.components.dfdnet import DFDNet
from facezoo.models.components.dfdnet_dictionary import load_dictionary, random_dictionary
from facezoo.models.components.dfdnet_parts import boxes_from_landmarks, template_boxes
from facezoo.utils.errors import ConfigError

log = logging.getLogger("facezoo")
RANDOM = "random"  # model.dictionary=random: seeded random atoms (benchmarks, tests)


class DFDNetModule(FaceZooModule):
    METHOD = "DFDNet"
    LOSS_WEIGHTS = ("l2", "perceptual", "adversarial")

    def __init__(
        self,
        generator: DFDNet,
        discriminator: nn.Module,
        size: int | None = None,
        dictionary: str | None = None,
        build_dictionary: Mapping | None = None,
        random_atoms: int = 16,
        perceptual_layers: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        adversarial_scales: Sequence[float] | None = None,
        ema_decay: float = 0.0,
        name: str = "dfdnet",
        **base_args,
    ) -> None:
        super().__init__(**base_args)
        self.generator, self.discriminator = generator, discriminator
        scales = len(discriminator.discriminators)
        self.adversarial_scales = [1.0] * scales if adversarial_scales is None else list(adversarial_scales)
        if len(self.adversarial_scales) != scales or len(perceptual_layers) != 4:
            raise ConfigError(
                f"model.adversarial_scales needs one weight per discriminator ({scales}), "
                f"model.perceptual_layers one per VGG layer (4); got {list(self.adversarial_scales)} and "
                f"{list(perceptual_layers)}"
            )
        self.perceptual_layers = [float(w) for w in perceptual_layers]
        self.size = size
        if dictionary == RANDOM and generator.use_dictionary:
            log.warning("!!! DFDNet: RANDOM component dictionaries (model.dictionary=random, %d atoms): for "
                        "benchmarks and tests only !!!", random_atoms)
            generator.dictionary.set_atoms(random_dictionary(random_atoms, size, width=generator.width).atoms)
        self.generator_ema = self.make_ema(generator, ema_decay) if ema_decay else None
        # the dictionaries are fixed and every rank loads the same file: DDP need not broadcast them (3.2 GB
        # at K = 512) at every step (PyTorch's documented way: DistributedDataParallel's docstring)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, [name for name, _ in self.named_buffers() if ".dictionary." in name]
        )

    # -- the input contract and inference --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return 32

    @property
    def native_size(self) -> int | None:
        return self.size

    def inference_networks(self) -> list[str]:
        return ["generator_ema" if self.generator_ema is not None else "generator"]

    def inference_generator(self) -> nn.Module:
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    def boxes(self, batch_or_boxes, lq: torch.Tensor) -> torch.Tensor:
        """The part boxes in `lq`'s pixels: the batch's (or the given ones), else the canonical boxes of an
        aligned face of that size."""
        boxes = batch_or_boxes.get(BOXES) if isinstance(batch_or_boxes, Mapping) else batch_or_boxes
        if boxes is None:
            if lq.shape[-1] != lq.shape[-2]:
                raise ConfigError(f"DFDNet: non-square faces {tuple(lq.shape[-2:])} need their part boxes")
            return template_boxes(lq.shape[0], lq.shape[-1]).to(lq.device)
        return boxes.to(lq.device, torch.float32)

    def predict(self, lq: torch.Tensor, boxes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        generator = self.inference_generator()
        return {"image": generator(lq, self.boxes(boxes, lq) if generator.use_dictionary else None)}

    def landmark_inputs(self, landmarks: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
        """The part boxes of the faces' own landmarks (the official get_part_location rule), for
        facezoo-restore: the canonical boxes fit a face only as far as its alignment does."""
        return {"boxes": boxes_from_landmarks(landmarks, size)} if self.generator.use_dictionary else {}

    def evaluation_inputs(self, batch: dict) -> dict:
        return {"boxes": batch[BOXES]} if BOXES in batch else {}

    # -- the dictionaries ------------------------------------------------------------------------------
    def load_dictionary(self, path: str) -> None:
        """Fill the generator's (and the EMA's) dictionaries from a file of any layout `load_dictionary`
        reads, for faces of the model's size and the generator's width."""
        atoms = load_dictionary(path, self.size, self.generator.width).atoms
        for net in filter(None, (self.generator, self.generator_ema and self.generator_ema.module)):
            net.dictionary.set_atoms(atoms)

    def build_dictionary(self, path: str) -> None:
        """Build the dictionary file `path` with facezoo-dfdnet-dictionary's `build`, from the options of
        `build_dictionary`, for faces of the model's size and with the generator's VGG-19 (file and width)."""
        from omegaconf import OmegaConf

        from facezoo.cli import CONF_DIR
        from facezoo.dfdnet_dictionary import build

        defaults = OmegaConf.load(Path(CONF_DIR) / "dfdnet_dictionary.yaml")
        for key in ("defaults", "task_name"):
            defaults.pop(key)
        found = self.generator.vgg.net.weights_file  # the same VGG-19 (a random one: the same seeded one)
        vgg = {"weights": None if found is None else str(found), "allow_random": found is None}
        fixed = {"out": path, "image_size": self.size, "vgg": vgg, "width": self.generator.width}
        build(OmegaConf.merge(defaults, dict(self.hparams.build_dictionary), fixed))

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if not self.generator.use_dictionary or self.trainer.ckpt_path is not None:
            return  # a resumed run's checkpoint holds the dictionaries
        path = self.hparams.dictionary
        if path == RANDOM:
            return
        if path and self.hparams.build_dictionary and not Path(path).exists():
            if self.trainer.is_global_zero:
                self.build_dictionary(path)
            self.trainer.strategy.barrier("dfdnet_dictionary")
        if path:
            self.load_dictionary(path)
        elif self.generator.dictionary.size == 0:
            raise ConfigError(
                "model.dictionary: DFDNet trains with fixed component dictionaries; build them first "
                "(facezoo-dfdnet-dictionary data_dir=<HQ faces> out=<file>.safetensors) and pass "
                "model.dictionary=<file>, or model.generator.use_dictionary=false for the ablation without"
            )

    # -- optimizers ------------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    # -- training --------------------------------------------------------------------------------------
    def perceptual(self, out: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
        """Σ_m w_m · mean((ψ_m(Î) − ψ_m(I_h))²), the 1/(C_m H_m W_m) of the paper as the mean."""
        with torch.no_grad():
            real = self.generator.features(hq)
        fake = self.generator.features(out)
        pairs = zip(self.perceptual_layers, fake, real, strict=True)
        terms = [w * F.mse_loss(f, r) for w, f, r in pairs if w]
        return torch.stack(terms).sum()

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        w = self.loss_weights
        lq, hq, _ = eval_pair(batch)
        boxes = self.boxes(batch, lq) if self.generator.use_dictionary else None
        opt_g, opt_d = self.optimizers()

        # 1. G: λ_l2·MSE + perceptual − Σ_r λ_a,r·D_r(Î↓r)
        out = self.generator(lq, boxes)
        logs = {"l2": F.mse_loss(out, hq)}
        loss = w["l2"] * logs["l2"]
        if w["perceptual"]:
            logs["perceptual"] = self.perceptual(out, hq)
            loss = loss + w["perceptual"] * logs["perceptual"]
        if w["adversarial"]:
            fake_logits = self.discriminator(out)
            pairs = zip(self.adversarial_scales, fake_logits, strict=True)
            terms = [a * generator_loss(x, "hinge") for a, x in pairs]
            logs["g_adv"] = torch.stack(terms).sum()
            loss = loss + w["adversarial"] * logs["g_adv"]
        self.step(opt_g, loss)
        # 2. the R discriminators, hinge
        if w["adversarial"]:
            real_logits, fake_logits = self.discriminator(hq), self.discriminator(out.detach())
            terms = [discriminator_loss(r, f, "hinge") for r, f in zip(real_logits, fake_logits, strict=True)]
            logs["d"] = torch.stack(terms).sum()
            self.step(opt_d, logs["d"])
        # 3. EMA
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)
        return logs

