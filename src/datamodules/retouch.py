"""Retouching data (FFHQR layout) with the semi-supervised γ split.

Training batches combine the three parts of the split in one dict:
`{"paired": {raw, retouched[, mask]}, "unpaired_raw": {raw}, "unpaired_retouched": {retouched}}`
(γ = 1 has only `paired`). Validation and test batches have only `paired`.
`setup("fit")` checks the test split too (when there is one), so a bad test file stops the run before
training rather than after it.
With `synthetic` set, `prepare_data` first renders the procedural face data set into `data_dir` (see
`src/datamodules/synthetic/`), so synthetic and real FFHQR data go through the same folder code.
"""

import logging
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only

from facezoo.datamodules.base import FaceDataModule
from facezoo.datamodules.batch import PAIRED, UNPAIRED_RAW, UNPAIRED_RETOUCHED
from facezoo.datamodules.folders import PlanDataset, RetouchFolder
from facezoo.datamodules.split import check_gamma, make_split
from facezoo.utils.errors import ConfigError, DataError

log = logging.getLogger("facezoo")

# draws per training epoch: "largest" = the largest part of the split (paired, unpaired raw or unpaired
# retouched), so an epoch's length depends on γ; "identities" = one per training identity whatever γ, so the
# runs of a γ sweep train for the same number of batches (the paper trains every γ for 300k iterations)
EPOCHS = ("largest", "identities")


class RetouchDataModule(FaceDataModule):
    def __init__(
        self,
        data_dir: str,
        gamma: float = 1.0,
        split_seed: int = 1234,
        image_size: int | None = None,
        synthetic: dict | None = None,
        skip_bad: bool = False,
        verify_images: bool = True,
        epoch: str = "largest",
        **loader_args,
    ) -> None:
        super().__init__(**loader_args)
        if epoch not in EPOCHS:
            raise ConfigError(f"datamodule.epoch={epoch!r}: expected one of {EPOCHS}")
        self.epoch = epoch
        self.data_dir = Path(data_dir)
        self.gamma, self.split_seed = check_gamma(gamma), int(split_seed)
        self.image_size, self.synthetic = image_size, dict(synthetic) if synthetic else None
        self.skip_bad, self.verify_images = skip_bad, verify_images
        self.split = None
        self.folders: dict[str, RetouchFolder] = {}

    def prepare_data(self) -> None:
        if self.synthetic:
            from facezoo.datamodules.synthetic.writers import write_ffhqr

            write_ffhqr(self.data_dir, **self.synthetic)

    def _folder(self, stage: str) -> RetouchFolder:
        if stage not in self.folders:
            if not self.data_dir.is_dir():
                raise DataError(
                    f"{self.data_dir}: data folder not found (expected the FFHQR layout "
                    "{train,val,test}/{source,target[,mask]})"
                )
            self.folders[stage] = RetouchFolder(
                self.data_dir / stage, self.image_size, self.skip_bad, self.verify_images
            )
        return self.folders[stage]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.split is None:
            train = self._folder("train")
            self.split = make_split(train.names, self.gamma, self.split_seed)
            log.info("split gamma=%s seed=%s: %s", self.gamma, self.split_seed, self.split.sizes())
            self._write_manifest()
            for logger in self.trainer.loggers if self.trainer is not None else []:
                logger.log_hyperparams({f"split/{k}": v for k, v in self.split.sizes().items()})
        if stage in (None, "fit", "validate"):
            self._folder("val")
        if stage == "fit" and not (self.data_dir / "test").is_dir():
            log.warning(
                "%s: no test split (expected test/ there); testing after training will fail", self.data_dir
            )
        elif stage in (None, "fit", "test"):
            self._folder("test")

    @rank_zero_only
    def _write_manifest(self) -> None:
        if self.manifest_dir is not None:
            self.split.write(self.manifest_dir / "split.json")

    def train_dataloader(self):
        train, split = self._folder("train"), self.split
        parts = {PAIRED: (list(split.paired), train.pair)}
        if split.unpaired_raw:
            parts[UNPAIRED_RAW] = (list(split.unpaired_raw), train.raw_only)
        if split.unpaired_retouched:
            parts[UNPAIRED_RETOUCHED] = (list(split.unpaired_retouched), train.retouched_only)
        length = len(train.names) if self.epoch == "identities" else None
        return self._loader(PlanDataset(parts), train=True, length=length)

    def _eval_loader(self, stage: str):
        folder = self._folder(stage)
        return self._loader(PlanDataset({PAIRED: (folder.names, folder.pair)}), train=False)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader("test")
