"""Checkpoints that carry their run and always hold its latest state: the run's config inside every checkpoint
(so `facezoo.eval` and `load_model` rebuild the model from the checkpoint alone), and `last.ckpt` rewritten at
every validation and at the end of training. Stopping on a signal is `stopping.StopOnSignal`; the format
itself (atomic writes, `weights_only` reads) is `facezoo.checkpoints`."""

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.trainer.states import TrainerFn

from facezoo.checkpoints import config_entries

LAST = "last.ckpt"


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config and the format version (`checkpoints.config_entries`)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.entries = config_entries(cfg)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint.update(self.entries)


class LastCheckpoint(Checkpoint):
    """`last.ckpt`: the latest state, written at the end of every validation, training epoch and of training.

    Lightning's `ModelCheckpoint(save_last=True)` (2.6) rewrites its last checkpoint only at a step where it
    also writes a top-k one, so once the monitored metric stops improving its `last.ckpt` is the best state,
    and a resume from the run folder would silently go back to it. A `Checkpoint` callback runs after the
    others, so the state includes the best-checkpoint bookkeeping of this validation."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / LAST
        self._saved_at: int | None = None

    def _save(self, trainer) -> None:
        if trainer.sanity_checking or self._saved_at == trainer.global_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: a resume point
        self._saved_at = trainer.global_step

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs without validation too
        self._save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer)
