"""What every facezoo method shares; a method adds only its networks and its training recipe.

- `restore(lq) -> dict(image=..., [mask=...])`: eval mode, no gradients; everything downstream (eval,
  sample grids, restore.py, notebooks) uses only this. Subclasses implement `predict(lq)`.
- One way to build a method (its config in conf/model/<method>.yaml): networks are injected (`_target_`);
  `optimizers` and `schedulers` are `_partial_` torch objects keyed by network group, the groups a method
  declares in `optimizer_groups()` (which networks each optimizer moves); `configure_optimizers` builds them
  here for every method (`prepare_optimizer` adjusts an optimizer before its scheduler is made, e.g. the lazy
  regularisation correction); schedulers step once per batch. `loss_weights`: the objective's weights, one
  dict, its keys a method's `LOSS_WEIGHTS`. Recipe variants are a config group (conf/model/recipe/).
- Manual optimization: subclasses implement `train_step(batch) -> dict of logs` and use `self.step(...)`
  (toggle, zero_grad, manual_backward, optional clipping, step, untoggle) for each network group.
- `batch_counter`: batches trained so far (a buffer, so it is saved and restored with the checkpoint);
  per-iteration schedules use it, never `trainer.global_step`, which counts optimizer steps. The run's length
  is `iterations` batches of this counter (train.yaml `iterations`; null = by epochs): the run stops there,
  resumed or not, whatever the number of optimizers, and a scheduler argument `T_max` / `total_iters` left
  null is that length (the trainer's estimate when training by epochs).
- Hyperparameters: every class's init arguments, saved as plain containers (checkpoints load with
  `torch.load(weights_only=True)`); networks and optimizer/scheduler factories are rebuilt from the config.
- Each training batch runs under a global RNG state seeded from (run seed, batch counter, rank), so a
  resumed run draws the same noise as an uninterrupted one.
- EMA copies (`make_ema`) are frozen `AveragedModel`s saved with the checkpoint.
- Pretrained helpers that are never trained (VGG, ArcFace, ...) are `Frozen` (losses/frozen.py); metrics hold
  theirs the torchmetrics way (LPIPS), as ordinary child metrics without persistent state.
- Validation/test: PSNR, SSIM, LPIPS (only when its backbone weights are found) and Soft-IoU of predicted
  vs true imperfection masks (when both exist). The test also logs the reference points a method must beat:
  `psnr_input`/`ssim_input` (the input itself as the answer) and `soft_iou_const` (the best constant mask).
"""

import inspect
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.parsing import collect_init_args
from torch import nn
from torch.optim.swa_utils import AveragedModel

from facezoo.datamodules.batch import eval_pair
from facezoo.metrics import ConstantMaskSoftIoU, SoftIoU, build_lpips, psnr_ssim_metrics
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import plain

log = logging.getLogger("facezoo")

ALIGNMENTS = ("template", "ffhq", None)  # see FaceZooModule.__init__ (`alignment`)

# EMA copies and mean teachers stay in eval mode on purpose; Lightning warns about any eval-mode module.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


class EMAUpdate:
    """θ_ema ← d·θ_ema + (1 − d)·θ, as `AveragedModel`'s multi_avg_fn (picklable, unlike torch's closure,
    which spawned DDP workers cannot pickle).

    With `warmup`, d = min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's ExponentialMovingAverage
    with num_updates), so a short run's EMA is not stuck at the initial weights; without it d = decay."""

    def __init__(self, decay: float, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema decay={decay}: expected 0 <= decay < 1")
        self.decay, self.warmup = float(decay), warmup

    def factor(self, num_averaged: int) -> float:
        return min(self.decay, (1 + num_averaged) / (10 + num_averaged)) if self.warmup else self.decay

    @torch.no_grad()
    def __call__(self, ema: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        d = self.factor(int(num_averaged))
        if torch.is_floating_point(ema[0]):
            torch._foreach_lerp_(ema, current, 1.0 - d)
        else:  # integer buffers
            for e, c in zip(ema, current, strict=True):
                e.copy_(e * d + c * (1 - d))


#: scheduler arguments that a null fills with the run's length in batches
RUN_LENGTH_ARGS = ("T_max", "total_iters")

#: a network group: the networks (or parameters) one optimizer moves
Networks = nn.Module | list[nn.Module | nn.Parameter]


def trainable_parameters(networks: Networks) -> list[nn.Parameter]:
    """The parameters of `networks` that require grad, each once, in order."""
    seen, params = set(), []
    for item in networks if isinstance(networks, list | tuple) else [networks]:
        for p in [item] if isinstance(item, nn.Parameter) else item.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


class FaceZooModule(pl.LightningModule):
    #: input contract: a fixed square size, or None with sides divisible by `size_multiple`
    fixed_size: int | None = None
    #: the keys of `loss_weights`: the terms of the method's objective
    LOSS_WEIGHTS: tuple[str, ...] = ()

    def __init__(
        self,
        optimizers: Mapping[str, Callable],
        schedulers: Mapping[str, Callable | None] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        iterations: int | None = None,
        lpips_net: str | None = "alex",
        lpips_weights: str | None = None,
        monitor: str = "val/psnr",
        monitor_mode: str = "max",
        alignment: str | None = None,
    ) -> None:
        """`optimizers` / `schedulers`: network group → `_partial_` optimizer / scheduler (a group without a
        scheduler keeps its learning rate). `iterations`: the run's length in batches (None: by epochs).
        `monitor`/`monitor_mode`: the metric that selects best.ckpt and that sweeps optimise; the configs'
        callbacks read them from the model node (`model.monitor`): a method without PSNR names its own.
        `alignment`: how the faces the model was trained on were cropped, which `facezoo-restore` repeats on
        whole photos: "template" (the 5-point similarity template of GFP-GAN/GPEN inference), "ffhq" (the FFHQ
        quad from 68 landmarks), or None (not a face restorer: the restore command refuses it)."""
        super().__init__()
        self._save_init_arguments(inspect.currentframe())
        self.automatic_optimization = False
        self.optimizer_factories = dict(optimizers)
        self.scheduler_factories = {k: v for k, v in dict(schedulers or {}).items() if v is not None}
        self.loss_weights = {str(k): float(v) for k, v in dict(loss_weights or {}).items()}
        if set(self.loss_weights) != set(self.LOSS_WEIGHTS):
            raise ConfigError(
                f"model.loss_weights: {type(self).__name__}'s objective weighs "
                f"{', '.join(self.LOSS_WEIGHTS)}; got {', '.join(self.loss_weights) or 'none'}"
            )
        if iterations is not None and iterations < 1:
            raise ConfigError(f"iterations={iterations}: expected a number of batches >= 1, or null")
        self.iterations = iterations
        if alignment not in ALIGNMENTS:
            raise ConfigError(f"model.alignment={alignment}: expected template, ffhq or null")
        self.alignment = alignment
        self.register_buffer("batch_counter", torch.zeros((), dtype=torch.long))
        self.val_quality = psnr_ssim_metrics()
        self.test_quality = psnr_ssim_metrics()
        self.val_soft_iou, self.test_soft_iou = SoftIoU(), SoftIoU()
        self.test_input_quality = psnr_ssim_metrics()
        self.test_const_soft_iou = ConstantMaskSoftIoU()
        # a metric without persistent state: its frozen backbone is never in our checkpoints
        self.lpips = build_lpips(lpips_net, lpips_weights) if lpips_net else None
        self._training_notes: list[str] = []

    def training_note(self, message: str) -> None:
        """A warning that matters to training only (e.g. a loss skipped for want of its file): said when
        fitting starts, never when the module is only built to restore or evaluate (`load_model`, eval)."""
        self._training_notes.append(message)

    def on_fit_start(self) -> None:
        for note in self._training_notes:
            log.warning(note)

    def _save_init_arguments(self, frame) -> None:
        """The init arguments of every class of the module (the outermost wins) as plain hyperparameters,
        without the networks and the factories (optimizers, schedulers, networks built later)."""
        args = {}
        for local in collect_init_args(frame, [], classes=(pl.LightningModule,)):
            args.update(local)
        kept = {k: v for k, v in args.items() if k not in ("optimizers", "schedulers") and not callable(v)}
        self.save_hyperparameters({k: plain(v) for k, v in kept.items()})

    # -- the input contract and inference --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return 1

    @property
    def native_size(self) -> int | None:
        """The square size the networks work at (inputs are resized to it, or must have it); None: any."""
        return self.fixed_size

    def check_input(self, lq: torch.Tensor) -> None:
        if lq.dim() != 4 or lq.shape[1] != 3:
            raise ConfigError(
                f"{type(self).__name__}: expected images of shape (B, 3, H, W), got {tuple(lq.shape)}"
            )
        self._check_size(*lq.shape[-2:], f"{type(self).__name__}: inputs")

    def _check_size(self, h: int, w: int, what: str) -> None:
        if self.fixed_size is not None and (h, w) != (self.fixed_size, self.fixed_size):
            size = f"{self.fixed_size}x{self.fixed_size}"
            raise ConfigError(f"{what}: {type(self).__name__} expected {size}, got {h}x{w}")
        m = self.size_multiple
        if h % m or w % m:
            raise ConfigError(f"{what}: {type(self).__name__} expected sides divisible by {m}, got {h}x{w}")

    def check_image_size(self, size, option: str) -> None:
        """Check a configured image size against the input contract before anything runs (None: the files'
        own sizes, checked per batch by `check_input`)."""
        if size is None:
            return
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"{option}={size}: expected a positive number of pixels, or null")
        self._check_size(size, size, f"{option}={size}")

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def inference_networks(self) -> list[str]:
        """The submodules `predict` uses (`load_model` reads and builds only these). Default: every child."""
        return [name for name, _ in self.named_children()]

    @torch.no_grad()
    def restore(self, lq: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """`predict` in eval mode without grad; `inputs`: what a method takes besides the faces (DFDNet's part
        boxes), optional: without them it uses its defaults."""
        self.check_input(lq)
        was_training = self.training
        self.eval()
        try:
            return self.predict(lq.to(self.device), **{k: v.to(self.device) for k, v in inputs.items()})
        finally:
            self.train(was_training)

    def landmark_inputs(self, landmarks: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
        """The `restore` inputs besides the faces that a method takes from their 68 landmarks, given in the
        pixels of the (size × size) aligned crops (B, 68, 2): what facezoo-restore passes. None by default."""
        return {}

    def evaluation_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """The `restore` inputs besides the faces that evaluation takes from a batch. None by default."""
        return {}

    # -- optimizers and schedulers, from the config ------------------------------------------------------
    def optimizer_groups(self) -> dict[str, Networks | dict[str, Networks]]:
        """Network group → the networks its optimizer moves (built from `optimizers[group]`, in this order).
        A dict value gives one optimizer per entry, each from the group's config (e.g. one per
        facial-component discriminator). Parameters that do not require grad (frozen priors) are left out."""
        raise NotImplementedError

    def prepare_optimizer(self, group: str, optimizer: torch.optim.Optimizer) -> None:
        """Adjust a group's optimizer once it is built, before its scheduler is made. Nothing by default."""

    def run_iterations(self) -> int:
        """The run's length in batches: `iterations`, or the trainer's estimate when training by epochs."""
        total = self.iterations or self.trainer.estimated_stepping_batches
        if total == float("inf"):
            raise ConfigError("the learning-rate schedule needs the run's length: set iterations=<batches>")
        return max(1, int(total))

    def make_scheduler(self, group: str, optimizer: torch.optim.Optimizer):
        make = self.scheduler_factories[group]
        keywords = getattr(make, "keywords", {})
        null = [k for k in RUN_LENGTH_ARGS if k in keywords and keywords[k] is None]
        return make(optimizer, **{k: self.run_iterations() for k in null})

    def configure_optimizers(self):
        groups = self.optimizer_groups()
        missing = [g for g in groups if g not in self.optimizer_factories]
        unknown = [g for g in (*self.optimizer_factories, *self.scheduler_factories) if g not in groups]
        if missing or unknown:
            raise ConfigError(
                f"model.optimizers / model.schedulers: {type(self).__name__}'s network groups are "
                f"{', '.join(groups)}" + (f"; no optimizer for {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(dict.fromkeys(unknown))}" if unknown else "")
            )
        optimizers, schedulers = [], []
        for group, networks in groups.items():
            for nets in networks.values() if isinstance(networks, Mapping) else [networks]:
                # a group with nothing to train keeps its place (and the step order) with a placeholder
                params = trainable_parameters(nets) or [nn.Parameter(torch.zeros(()))]
                try:
                    optimizer = self.optimizer_factories[group](params)
                except ValueError as err:  # torch's checks: "Invalid learning rate: -1" ...
                    raise ConfigError(f"model.optimizers.{group}: {err}") from None
                self.prepare_optimizer(group, optimizer)
                optimizers.append(optimizer)
                if group in self.scheduler_factories:
                    schedulers.append(self.make_scheduler(group, optimizer))
        return optimizers, schedulers

    def step_schedulers(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    # -- training helpers ------------------------------------------------------------------------------
    def make_ema(self, net: nn.Module, decay: float, warmup: bool = False) -> AveragedModel:
        ema = AveragedModel(net, multi_avg_fn=EMAUpdate(decay, warmup), use_buffers=True)
        ema.update_parameters(net)  # n_averaged 0 -> 1: starts as an exact copy
        return ema.requires_grad_(False).eval()

    @contextmanager
    def _toggled(self, optimizers: list):
        """Only the parameters of `optimizers` require grad inside (Lightning's toggle, for several)."""
        own = {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
        others = [
            p for opt in self.trainer.optimizers for group in opt.param_groups for p in group["params"]
            if id(p) not in own and p.requires_grad
        ]
        for p in others:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in others:
                p.requires_grad_(True)

    def step(self, optimizers, loss: torch.Tensor, clip: float | None = None) -> None:
        """One backward of `loss` and a step of each optimizer in `optimizers` (one or a list): networks
        minimising the same objective share the backward (manual optimization)."""
        optimizers = list(optimizers) if isinstance(optimizers, list | tuple) else [optimizers]
        with self._toggled(optimizers):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            for opt in optimizers:
                if clip:
                    self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
                opt.step()

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _batch_seed(self) -> int:
        run_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        return (run_seed * 1_000_003 + int(self.batch_counter) * 64 + self.global_rank) % 2**63

    def _run_done(self) -> bool:
        return self.iterations is not None and int(self.batch_counter) >= self.iterations

    def on_train_batch_start(self, batch, batch_idx: int) -> int | None:
        if self._run_done():  # resumed from a run that had finished: train nothing
            self.trainer.should_stop = True
            return -1
        return None

    def training_step(self, batch: dict, batch_idx: int) -> None:
        torch.manual_seed(self._batch_seed())
        logs = self.train_step(batch)
        self.step_schedulers()
        self.batch_counter += 1
        if self._run_done():
            self.trainer.should_stop = True
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=True)

    # -- evaluation ------------------------------------------------------------------------------------
    def evaluation_pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(input, target, true mask or None) of an evaluation batch (batch.py `eval_pair`); a method whose
        target is not the batch's own overrides it."""
        return eval_pair(batch)

    def _evaluate(self, batch: dict, stage: str) -> None:
        lq, target, true_mask = self.evaluation_pair(batch)
        out = self.restore(lq, **self.evaluation_inputs(batch))
        image = out["image"].clamp(-1, 1)
        quality = getattr(self, f"{stage}_quality")
        quality.update(image, target)
        self.log_dict({f"{stage}/{k}": v for k, v in quality.items()}, on_step=False, on_epoch=True)
        if self.lpips is not None:
            self.lpips.update(image, target)
        self.update_extra_metrics(stage, image, target)
        if true_mask is not None and "mask" in out:
            soft_iou = getattr(self, f"{stage}_soft_iou")
            soft_iou.update(out["mask"], true_mask)
            self.log(f"{stage}/soft_iou", soft_iou, on_step=False, on_epoch=True)
        if stage == "test":
            self.test_input_quality.update(lq, target)
            self.log_dict({f"test/{k}_input": v for k, v in self.test_input_quality.items()},
                          on_step=False, on_epoch=True)
            if true_mask is not None and "mask" in out:
                self.test_const_soft_iou.update(true_mask)
                self.log("test/soft_iou_const", self.test_const_soft_iou, on_step=False, on_epoch=True)

    def update_extra_metrics(self, stage: str, image: torch.Tensor, target: torch.Tensor) -> None:
        """A method's own evaluation metrics (e.g. GFP-GAN's identity similarity): `image` is the clamped
        restoration of the batch, `target` its ground truth. Nothing by default."""

    def _log_lpips(self, stage: str) -> None:
        if self.lpips is not None and self.lpips.update_called:
            self.log(f"{stage}/lpips", self.lpips.compute(), sync_dist=True)
            self.lpips.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_lpips("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_lpips("test")
