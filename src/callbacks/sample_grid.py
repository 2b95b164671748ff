"""Sample grids (input | output | target | mask) written as PNG and sent to the logger.

The first validation batch is restored with `pl_module.restore` after every validation epoch
(`samples/step_XXXXXXX.png`, named by the module's batch counter) and once at test time
(`samples/test.png`). The mask column shows the predicted mask when the method makes one, else the true mask.
"""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from facezoo.datamodules.batch import eval_pair
from facezoo.utils.grid import as_rgb, make_grid
from facezoo.utils.image_io import to_uint8, write_image


class SampleGrid(pl.Callback):
    def __init__(self, dirpath: str, max_images: int = 8) -> None:
        self.dirpath, self.max_images = Path(dirpath), max_images
        self.last_path: Path | None = None

    def _grid(self, pl_module, batch):
        lq, target, true_mask = eval_pair(batch)
        lq, target = lq[: self.max_images], target[: self.max_images]
        out = pl_module.restore(lq)
        columns = [lq, out["image"], target]
        mask = out.get("mask", true_mask)
        if mask is not None:
            columns.append(as_rgb(mask[: self.max_images].to(lq)))
        return make_grid(columns)

    @rank_zero_only
    def _save(self, trainer, pl_module, batch, name: str) -> None:
        grid = self._grid(pl_module, batch)
        path = self.dirpath / f"{name}.png"
        write_image(path, grid)
        self.last_path = path
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(logger, "log_image"):  # wandb
                logger.log_image(key="samples", images=[str(path)], step=trainer.global_step)
            elif hasattr(experiment, "add_image"):  # tensorboard
                experiment.add_image("samples", to_uint8(grid), int(pl_module.batch_counter))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            self._save(trainer, pl_module, batch, f"step_{int(pl_module.batch_counter):07d}")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0:
            self._save(trainer, pl_module, batch, "test")
