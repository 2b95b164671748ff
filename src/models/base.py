"""What every facezoo method shares; a method adds only its networks and its training recipe.

- `restore(lq) -> dict(image=..., [mask=...])`: eval mode, no gradients; everything downstream (eval,
  sample grids, restore.py, notebooks) uses only this. Subclasses implement `predict(lq)`.
- Manual optimization: subclasses implement `train_step(batch) -> dict of logs` and use `self.step(...)`
  (toggle, zero_grad, manual_backward, optional clipping, step, untoggle) for each network group.
- `batch_counter`: batches trained so far (a buffer, so it is saved and restored with the checkpoint);
  per-iteration schedules use it, never `trainer.global_step`, which counts optimizer steps.
- Each training batch runs under a global RNG state seeded from (run seed, batch counter, rank), so a
  resumed run draws the same noise as an uninterrupted one.
- EMA copies (`make_ema`) are frozen `AveragedModel`s saved with the checkpoint.
- Validation/test: PSNR, SSIM, LPIPS (only when its backbone weights are found) and Soft-IoU of predicted
  vs true imperfection masks (when both exist). The test also logs the reference points a method must beat:
  `psnr_input`/`ssim_input` (the input itself as the answer) and `soft_iou_const` (the best constant mask).
"""

import os
import warnings
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from facezoo.metrics import ConstantMaskSoftIoU, SoftIoU, build_lpips, psnr_ssim_metrics
from facezoo.utils.errors import ConfigError

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


def eval_pair(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(input, target, true mask or None) of a retouching or restoration evaluation batch."""
    if "paired" in batch:
        paired = batch["paired"]
        return paired["raw"], paired["retouched"], paired.get("mask")
    return batch["lq"], batch["hq"], None


class FaceZooModule(pl.LightningModule):
    #: input contract: a fixed square size, or None with sides divisible by `size_multiple`
    fixed_size: int | None = None

    def __init__(
        self,
        lpips_net: str | None = "alex",
        lpips_weights: str | None = None,
        monitor: str = "val/psnr",
        monitor_mode: str = "max",
    ) -> None:
        """`monitor`/`monitor_mode`: the metric that selects best.ckpt and that sweeps optimise; the configs'
        callbacks read them from the model node (`model.monitor`): a method without PSNR names its own."""
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("batch_counter", torch.zeros((), dtype=torch.long))
        self.val_quality = psnr_ssim_metrics()
        self.test_quality = psnr_ssim_metrics()
        self.val_soft_iou, self.test_soft_iou = SoftIoU(), SoftIoU()
        self.test_input_quality = psnr_ssim_metrics()
        self.test_const_soft_iou = ConstantMaskSoftIoU()
        # LPIPS is kept out of the module tree: its frozen backbone is not part of our checkpoints.
        self._lpips = {"metric": build_lpips(lpips_net, lpips_weights) if lpips_net else None}

    # -- the input contract and inference --------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return 1

    def check_input(self, lq: torch.Tensor) -> None:
        if lq.dim() != 4 or lq.shape[1] != 3:
            raise ConfigError(
                f"{type(self).__name__}: expected images of shape (B, 3, H, W), got {tuple(lq.shape)}"
            )
        h, w = lq.shape[-2:]
        if self.fixed_size is not None and (h, w) != (self.fixed_size, self.fixed_size):
            raise ConfigError(
                f"{type(self).__name__}: expected {self.fixed_size}x{self.fixed_size} inputs, got {h}x{w}"
            )
        m = self.size_multiple
        if h % m or w % m:
            raise ConfigError(
                f"{type(self).__name__}: expected height and width divisible by {m}, got {h}x{w}"
            )

    def predict(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def inference_networks(self) -> list[str]:
        """The submodules `predict` uses (`load_model` reads and builds only these). Default: every child."""
        return [name for name, _ in self.named_children()]

    @torch.no_grad()
    def restore(self, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(lq)
        was_training = self.training
        self.eval()
        try:
            return self.predict(lq.to(self.device))
        finally:
            self.train(was_training)

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

    def training_step(self, batch: dict, batch_idx: int) -> None:
        torch.manual_seed(self._batch_seed())
        logs = self.train_step(batch)
        self.batch_counter += 1
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=True)

    # -- evaluation ------------------------------------------------------------------------------------
    def _evaluate(self, batch: dict, stage: str) -> None:
        lq, target, true_mask = eval_pair(batch)
        out = self.restore(lq)
        image = out["image"].clamp(-1, 1)
        quality = getattr(self, f"{stage}_quality")
        quality.update(image, target)
        self.log_dict({f"{stage}/{k}": v for k, v in quality.items()}, on_step=False, on_epoch=True)
        lpips = self._lpips["metric"]
        if lpips is not None:
            lpips.to(self.device).update(image, target)
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
        lpips = self._lpips["metric"]
        if lpips is not None and lpips.update_called:
            self.log(f"{stage}/lpips", lpips.compute(), sync_dist=True)
            lpips.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_lpips("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_lpips("test")
