"""Blind face restoration data: HQ folders degraded on the fly, or a paired LQ/HQ test folder.

Training and validation batches carry `hq` only until `on_after_batch_transfer`, where the batched
degradation (kornia, on the batch's device, seeded by the batch's draws) adds `lq`; validation draws are the
same every epoch, so validation LQ images are identical across epochs and runs. A test set given as LQ/HQ
folders is used as is. With `synthetic` set, `prepare_data` renders procedural clean faces into `data_dir`.
"""

from pathlib import Path

import torch

from src.datamodules.base import FaceDataModule
from src.datamodules.folders import ImageFolder, PairedImageFolders, PlanDataset
from src.utils.errors import DataError


class RestoreDataModule(FaceDataModule):
    """`data_dir/{train,val,test}` hold HQ images; `test_lq_dir` + `test_hq_dir` override the test split."""

    def __init__(
        self,
        data_dir: str,
        degradation: torch.nn.Module,
        image_size: int | None = None,
        test_lq_dir: str | None = None,
        test_hq_dir: str | None = None,
        synthetic: dict | None = None,
        skip_bad: bool = False,
        verify_images: bool = True,
        **loader_args,
    ) -> None:
        super().__init__(**loader_args)
        self.data_dir, self.degradation, self.image_size = Path(data_dir), degradation, image_size
        self.test_dirs = (test_lq_dir, test_hq_dir) if test_lq_dir or test_hq_dir else None
        self.synthetic = dict(synthetic) if synthetic else None
        self.skip_bad, self.verify_images = skip_bad, verify_images
        self.folders: dict[str, ImageFolder | PairedImageFolders] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            from src.datamodules.synthetic import write_faces

            synthetic = dict(self.synthetic)
            counts = {s: synthetic.pop(s) for s in ("train", "val", "test")}
            for offset, (stage, n) in enumerate(counts.items()):
                # disjoint identities per split: each split renders its own seed stream
                write_faces(
                    self.data_dir / stage, n=n, **{**synthetic, "seed": synthetic.get("seed", 0) + offset}
                )

    def _folder(self, stage: str):
        if stage not in self.folders:
            if stage == "test" and self.test_dirs is not None:
                lq, hq = self.test_dirs
                if not (lq and hq):
                    raise DataError("datamodule.test_lq_dir and test_hq_dir must be given together")
                self.folders[stage] = PairedImageFolders(lq, hq, self.image_size, self.skip_bad)
            else:
                if not self.data_dir.is_dir():
                    raise DataError(
                        f"{self.data_dir}: data folder not found (expected {{train,val,test}}/ of HQ faces)"
                    )
                self.folders[stage] = ImageFolder(
                    self.data_dir / stage, self.image_size, self.skip_bad, self.verify_images
                )
        return self.folders[stage]

    def setup(self, stage: str | None = None) -> None:
        for name in {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage, ("train", "val", "test")
        ):
            self._folder(name)

    def _plan(self, stage: str) -> PlanDataset:
        folder = self._folder(stage)
        load = folder.pair if isinstance(folder, PairedImageFolders) else folder.hq_item
        return PlanDataset({None: (folder.names, load)})

    def train_dataloader(self):
        return self._loader(self._plan("train"), train=True)

    def val_dataloader(self):
        return self._loader(self._plan("val"), train=False)

    def test_dataloader(self):
        return self._loader(self._plan("test"), train=False)

    def degrade(self, batch):
        if "lq" in batch:
            return batch
        out = self.degradation(batch["hq"], seed=self.batch_seed(batch))
        return {**batch, "lq": out["lq"], "hq": out["hq"]}
