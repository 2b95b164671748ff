"""Checkpoints that survive crashes and carry their run: a last checkpoint on SIGTERM/Ctrl-C, and the run's
config inside every checkpoint so `facezoo.eval` and `load_model` rebuild the model from the checkpoint alone.
The format itself (atomic writes, `weights_only` reads) is `facezoo.checkpoints`."""

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_info

from facezoo.checkpoints import config_entries


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config and the format version (`checkpoints.config_entries`)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.entries = config_entries(cfg)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint.update(self.entries)


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
