"""Blind face restoration data: HQ folders degraded on the fly, or a paired LQ/HQ test folder.

Training and validation batches carry `hq` only until `on_after_batch_transfer`, where the batched
degradation (kornia, on the batch's device, seeded by the batch's draws) adds `lq`; validation draws are the
same every epoch, so validation LQ images are identical across epochs and runs. A test set given as LQ/HQ
folders is used as is. With `synthetic` set, `prepare_data` renders procedural clean faces into `data_dir`.
`setup("fit")` checks the test split too (when there is one), so a bad test file stops the run before
training rather than after it.

`component_boxes` adds `boxes` (B, 4, 4) float32 to every batch: eye, nose and mouth boxes in the pixels of
the images as loaded (src/datamodules/boxes.py), for GFP-GAN's facial-component discriminators. `use_hflip`
flips training samples horizontally (p 0.5) before the degradation, images and boxes together, as GFP-GAN's
FFHQDegradationDataset does (`augment(img_gt, hflip=True)`, then `get_component_coordinates(index, status)`).

`unaligned` moves validation and test faces (each by its own shift, rotation and zoom-out, fixed per index)
before the degradation, boxes included: restoration beyond aligned crops (src/datamodules/unaligned.py).
"""

import logging
from pathlib import Path

import torch

from facezoo.datamodules.base import FaceDataModule
from facezoo.datamodules.batch import BOXES, HQ, LQ
from facezoo.datamodules.boxes import (
    BOXES_JSON,
    ComponentBoxes,
    hflip_boxes,
    landmark_key,
    load_boxes_json,
    load_gfpgan_landmarks,
)
from facezoo.datamodules.folders import ImageFolder, PairedImageFolders, PlanDataset
from facezoo.datamodules.unaligned import Unaligned
from facezoo.utils.errors import ConfigError, DataError
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve

log = logging.getLogger("facezoo")

# mixed into the batch seed for the flips: the degradation draws from a generator seeded by the batch seed
# itself, and its first draws must not decide the flips
_HFLIP_SALT = 0x6F1E_F11B_5A17


class WithBoxes:
    """Item loader: `load(name)` plus `boxes` (4, 4) in the pixels of the loaded `hq`; picklable (workers)."""

    def __init__(self, load, boxes: ComponentBoxes, paths: dict[str, Path]) -> None:
        self.load, self.boxes, self.paths = load, boxes, paths

    def __call__(self, name: str) -> dict[str, torch.Tensor]:
        item = self.load(name)
        return {**item, BOXES: self.boxes(name, self.paths[name], tuple(item[HQ].shape[-2:]))}


class RestoreDataModule(FaceDataModule):
    """`data_dir/{train,val,test}` hold HQ images; `test_lq_dir` + `test_hq_dir` override the test split.

    component_boxes: None (no `boxes`) | "auto" (each split folder's boxes.json, else canonical) | "canonical"
    (`canonical_boxes` for every image) | GFP-GAN's landmarks file: a path, or `gfpgan_component_boxes` /
    its file name to find it in the pretrained folders (src/weights/resolver.resolve).
    use_hflip: flip training samples horizontally with probability 0.5 (never validation or test).
    unaligned: None (off) | {prob, shift, rotate, zoom_out, seed}: unaligned validation and test faces.
    """

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
        component_boxes: str | None = None,
        use_hflip: bool = False,
        unaligned: dict | None = None,
        **loader_args,
    ) -> None:
        super().__init__(**loader_args)
        self.data_dir, self.degradation, self.image_size = Path(data_dir), degradation, image_size
        self.test_dirs = (test_lq_dir, test_hq_dir) if test_lq_dir or test_hq_dir else None
        self.synthetic = dict(synthetic) if synthetic else None
        self.skip_bad, self.verify_images = skip_bad, verify_images
        self.folders: dict[str, ImageFolder | PairedImageFolders] = {}
        if component_boxes is not None and not str(component_boxes).strip():
            raise ConfigError(
                "datamodule.component_boxes is empty: expected null, auto, canonical or the path of "
                "GFP-GAN's landmarks file (FFHQ_eye_mouth_landmarks_512.pth)"
            )
        self.component_boxes, self.use_hflip = component_boxes, bool(use_hflip)
        self.unaligned = Unaligned.from_config(unaligned)
        self.boxes: dict[str, ComponentBoxes | None] = {}
        self._landmarks: dict[str, torch.Tensor] | None = None  # read once for all splits

    def prepare_data(self) -> None:
        if self.synthetic:
            from facezoo.datamodules.synthetic.writers import write_faces

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
                self.folders[stage] = PairedImageFolders(
                    lq, hq, self.image_size, self.skip_bad, self.verify_images
                )
            else:
                if not self.data_dir.is_dir():
                    raise DataError(
                        f"{self.data_dir}: data folder not found (expected {{train,val,test}}/ of HQ faces)"
                    )
                self.folders[stage] = ImageFolder(
                    self.data_dir / stage, self.image_size, self.skip_bad, self.verify_images
                )
            folder = self.folders[stage]
            hq = folder.hq if isinstance(folder, PairedImageFolders) else folder
            self.boxes[stage] = self._component_boxes(hq.root)
            if self.boxes[stage] is not None:
                self.boxes[stage].check({name: hq.paths[name] for name in folder.names})
        return self.folders[stage]

    def _component_boxes(self, root: Path) -> ComponentBoxes | None:
        spec = self.component_boxes
        if spec is None:
            return None
        if spec == "canonical":
            return ComponentBoxes()
        if spec == "auto":
            table = load_boxes_json(root)
            return ComponentBoxes() if table is None else ComponentBoxes(table, None, root / BOXES_JSON)
        known = KNOWN_WEIGHTS["gfpgan_component_boxes"]
        named = spec in (known.key, known.filename) and not Path(spec).exists()
        path = resolve(known.key, None if named else spec, option="datamodule.component_boxes")
        if self._landmarks is None:
            self._landmarks = load_gfpgan_landmarks(path)
        return ComponentBoxes(self._landmarks, source=path, key=landmark_key)

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val", "test"), "validate": ("val",), "test": ("test",)}
        names = splits.get(stage, ("train", "val", "test"))
        if stage == "fit" and self.test_dirs is None and not (self.data_dir / "test").is_dir():
            if self.data_dir.is_dir():  # else the train split's error says what is missing
                log.warning(
                    "%s: no test split (expected test/ there, or test_lq_dir + test_hq_dir); testing after "
                    "training will fail",
                    self.data_dir,
                )
                names = ("train", "val")
        for name in names:
            self._folder(name)

    def _plan(self, stage: str) -> PlanDataset:
        folder = self._folder(stage)
        paired = isinstance(folder, PairedImageFolders)
        load = folder.pair if paired else folder.hq_item
        if self.boxes[stage] is not None:
            load = WithBoxes(load, self.boxes[stage], folder.hq.paths if paired else folder.paths)
        return PlanDataset({None: (folder.names, load)})

    def train_dataloader(self):
        return self._loader(self._plan("train"), train=True)

    def val_dataloader(self):
        return self._loader(self._plan("val"), train=False)

    def test_dataloader(self):
        return self._loader(self._plan("test"), train=False)

    def degrade(self, batch):
        # the batch does not say which loader it came from; Lightning's trainer does (base.py checks the same)
        training = self.trainer is not None and self.trainer.training
        if self.unaligned.enabled and not training:
            batch = self.unaligned(batch)
        if LQ in batch:
            return batch
        if self.use_hflip and training:
            batch = self.hflip(batch)
        out = self.degradation(batch[HQ], seed=self.batch_seed(batch))
        return {**batch, LQ: out["lq"], HQ: out["hq"]}

    def hflip(self, batch: dict) -> dict:
        """Flip each sample's `hq` (and `boxes`) horizontally with probability 0.5, drawn from a generator
        seeded by the batch's draws: the same batch flips the same way in every run and after a resume."""
        hq = batch[HQ]
        generator = torch.Generator().manual_seed((self.batch_seed(batch) ^ _HFLIP_SALT) % 2**64)
        flipped = (torch.rand(hq.shape[0], generator=generator) < 0.5).to(hq.device)
        out = {**batch, HQ: torch.where(flipped.view(-1, 1, 1, 1), hq.flip(-1), hq)}
        if BOXES in batch:
            out[BOXES] = hflip_boxes(batch[BOXES], hq.shape[-1], flipped)
        return out
