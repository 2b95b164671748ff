"""What the retouching and restoration DataModules share: resumable seeded loaders and device-side conversion.

Batches leave the loaders as uint8; `on_after_batch_transfer` turns images into float [-1, 1] and masks into
float [0, 1] on the batch's device, where subclasses also run their batched degradations. The module keeps
the id of the next training draw in its state, so a resumed run continues with the same batches.
"""

import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from facezoo.datamodules.batch import IMAGE_KEYS, MASK
from facezoo.datamodules.folders import PlanDataset
from facezoo.datamodules.sampler import MultiSubsetSampler
from facezoo.utils.errors import ConfigError
from facezoo.utils.image_io import to_float

# Lightning cannot see that our loaders resume through the DataModule state; its warning would be wrong.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")


def convert_images(batch):
    """uint8 images -> float [-1, 1], uint8 masks -> float [0, 1], recursively through group dicts."""
    if isinstance(batch, dict):
        out = {}
        for key, value in batch.items():
            if key in IMAGE_KEYS and value.dtype == torch.uint8:
                out[key] = to_float(value)
            elif key == MASK and value.dtype == torch.uint8:
                out[key] = value.float() / 255.0
            else:
                out[key] = convert_images(value)
        return out
    return batch


class FaceDataModule(pl.LightningDataModule):
    def __init__(
        self,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        seed: int = 0,
        manifest_dir: str | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"datamodule.batch_size={batch_size}: expected a positive integer")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        if num_workers is not None and num_workers < 0:
            raise ConfigError(
                f"datamodule.num_workers={num_workers}: expected 0 (load in the training process), a number "
                "of loader processes, or null (one per CPU core but one, at most 4)"
            )
        if num_workers is None:  # one per core this process may use, the training's own core kept free
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            num_workers = max(0, min(4, cores - 1))
        self.num_workers, self.seed = int(num_workers), seed
        self.manifest_dir = Path(manifest_dir) if manifest_dir else None
        self._next_draw = 0  # id of the next training draw: restored from checkpoints
        self._resume_pending = False
        self._train_length = 0  # draws per training epoch

    # -- resumable state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"next_draw": self._next_draw}

    def load_state_dict(self, state: dict) -> None:
        self._next_draw = int(state.get("next_draw", 0))
        self._resume_pending = True

    # -- loaders ---------------------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: PlanDataset, train: bool, length: int | None = None) -> DataLoader:
        """`length`: draws per epoch (default: the largest subset)."""
        rank, world = self._rank_world()
        sampler = MultiSubsetSampler(
            dataset.sizes, seed=self.seed, length=length, shuffle=train, rank=rank, world_size=world
        )
        if train:
            if sampler.length // world < self.batch_size:  # drop_last: no batch, Lightning would train none
                raise ConfigError(
                    f"datamodule.batch_size={self.batch_size}: {sampler.length} training samples per epoch"
                    + (f" over {world} processes ({sampler.length // world} each)" if world > 1 else "")
                    + " do not fill one batch; lower the batch size or the number of devices, or add data"
                )
            self._train_length = sampler.length
            if self._resume_pending:
                sampler.resume_at(self._next_draw)
                self._resume_pending = False
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=train,
            persistent_workers=self.num_workers > 0,
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        batch = convert_images(batch)
        trainer = self.trainer
        if trainer is not None and trainer.training and "draw" in batch:
            _, world = self._rank_world()
            epoch, position = divmod(int(batch["draw"].max()), self._train_length)
            # every rank consumed the same number of draws: continue at the start of the next round
            self._next_draw = epoch * self._train_length + (position // world + 1) * world
        return self.degrade(batch)

    def degrade(self, batch):
        """Subclasses turn clean images into inputs here (batched, on the device)."""
        return batch

    def batch_seed(self, batch) -> int:
        """A seed that is a pure function of the run seed and the draws in the batch."""
        return int(self.seed) * 1_000_003 + int(batch["draw"].min())
