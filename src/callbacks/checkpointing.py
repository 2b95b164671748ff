"""Checkpoints that survive crashes: atomic writes, a last checkpoint on SIGTERM/Ctrl-C, and the run's
config inside every checkpoint so `facezoo.eval` can rebuild the model from the checkpoint alone."""

import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info

CONFIG_KEY = "facezoo_config"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then rename over the target: a crash mid-write
    leaves the previous checkpoint intact, never a truncated one."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config (plain containers only, so `weights_only` loading works)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint[CONFIG_KEY] = self.config


class CheckpointOnInterrupt(pl.Callback):
    """On SIGTERM (e.g. a cluster pre-emption) or Ctrl-C, save `last.ckpt` before exiting.

    Lightning raises its SIGTERM exception between batches, so the saved state is consistent and the run
    resumes with `ckpt_path=<run>/checkpoints/last.ckpt`."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if isinstance(exception, KeyboardInterrupt | SystemExit) and trainer.training:
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path)
            rank_zero_info(f"interrupted: saved a resumable checkpoint to {path}")
