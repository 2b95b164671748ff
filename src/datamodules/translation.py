"""Faces paired with their label maps: the data of StyleGANEX's sketch-to-face and mask-to-face translation.

Layout: `data_dir/{train,val,test}/` of faces (as RestoreDataModule), each face's label map named as the face
(same stem) in `label_dir/{split}/`, by default `data_dir/{split}/<labels>/`, where `synthetic` writes them
(synthetic/writers.py `write_faces(labels=True)`: the renderer's parsing in the 19 CelebAMask-HQ classes and
its sketch). `labels`:
- `parsing`: 8-bit label PNGs, one channel, values 0..18 (face_labels.py CELEBAMASK_LABELS; the official
  mask2face input, e.g. StyleGANEX's data/ILip77SbmOE_mask.png; a palette PNG's indices are its labels),
  resized to the face by nearest neighbour (the official bilinear Resize of the label image mixes labels);
- `sketch`: sketches, dark lines on white (the official sketch2face input, e.g. data/234_sketch.jpg; colour
  files by their luminance), resized as photos;
- `xdog`: no files: each face's sketch is made from the photo on the device by XDoG (sketch.py
  `pencil_sketch`, batched), so photos alone train sketch2face;
- `image`: RGB images of another domain, resized as photos: StyleGANEX toonification's pairs with
  `model.toonify.pairs=folders` (data_dir: the Toonify renderings, the targets; label_dir: the faces, `lq`).
A face without its label map or a label file without its face, a parsing map of another kind (colour, 16
bits) or with labels over 18 stop setup with one line naming the file (`skip_bad`: skipped and counted).

Batches: `hq`, the faces, and `lq`, the label map drawn as the picture its file shows, (B, 3, H, W) in
[-1, 1] like any image: a sketch's gray, a parsing map's labels as the gray levels 0..18 (the 8-bit label PNG
read as RGB). `lq` is what `restore`, evaluation and sample grids hand the model, which reads the
translation network's input from it exactly: `sketch_input` (1 channel in [0, 1], dark lines on white, as
the official ToTensor of the sketch file) and `parsing_input` (the 19-channel one-hot).
"""

from pathlib import Path

import kornia
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from facezoo.datamodules.batch import HQ, LQ
from facezoo.datamodules.face_labels import CELEBAMASK_LABELS, one_hot
from facezoo.datamodules.folders import ImageFolder, PairedImageFolders, PlanDataset, load_image
from facezoo.datamodules.restore import RestoreDataModule
from facezoo.datamodules.sketch import pencil_sketch
from facezoo.utils.errors import ConfigError, DataError

LABELS = ("parsing", "sketch", "xdog", "image")
MAX_LABEL = len(CELEBAMASK_LABELS) - 1  # 18


def read_parsing(path: str | Path) -> np.ndarray:
    """An 8-bit label PNG (mode L, or P: its indices) → (H, W) uint8 labels 0..18; anything else is a
    DataError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, labels = image.mode, np.asarray(image)
    except Exception as err:  # PIL raises many types for corrupt files
        raise DataError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from None
    if mode not in ("L", "P"):
        raise DataError(f"{path}: a {mode} image; expected a parsing map as an 8-bit one-channel label PNG "
                        f"(values 0..{MAX_LABEL})")
    if labels.size and labels.max() > MAX_LABEL:
        raise DataError(f"{path}: labels up to {labels.max()}; expected 0..{MAX_LABEL} (the CelebAMask-HQ "
                        "classes of face_labels.py)")
    return labels


def parsing_picture(labels: Tensor) -> Tensor:
    """Labels (..., H, W) uint8 → their picture (..., 3, H, W) uint8: each label as a gray level."""
    return labels.unsqueeze(-3).expand(*labels.shape[:-2], 3, *labels.shape[-2:]).contiguous()


def sketch_picture(sketch: Tensor) -> Tensor:
    """Sketches (B, 1, H, W) in [0, 1], dark lines on white → their picture (B, 3, H, W) in [-1, 1]."""
    return (sketch * 2 - 1).expand(-1, 3, -1, -1)


def sketch_input(lq: Tensor) -> Tensor:
    """A sketch's picture (B, 3, H, W) in [-1, 1] → T's input (B, 1, H, W) in [0, 1]: its luminance (ITU-R
    601, PIL's "L"), dark lines on white."""
    return kornia.color.rgb_to_grayscale((lq + 1) / 2).clamp(0, 1)


def parsing_input(lq: Tensor) -> Tensor:
    """A parsing map's picture (B, 3, H, W) in [-1, 1] → T's input, the one-hot (B, 19, H, W) of 0 / 1."""
    levels = ((lq + 1) * 127.5).round()
    colour = bool((levels != levels[:, :1]).any())
    if colour or levels.max() > MAX_LABEL:
        got = "colours" if colour else f"levels up to {levels.max():g}"
        raise DataError(f"mask2face: expected parsing maps drawn as gray levels 0..{MAX_LABEL} (an 8-bit "
                        f"label PNG read as RGB), got {got}")
    return one_hot(levels[:, 0].long())


class LabelledFaces(PairedImageFolders):
    """One split: faces and their label maps paired by name (`PairedImageFolders`: a file without its
    partner is named), each map at its face's size."""

    def __init__(self, labels_root, faces_root, kind: str, image_size: int | None = None,
                 skip_bad: bool = False, verify: bool = True) -> None:
        super().__init__(labels_root, faces_root, image_size, skip_bad, verify)
        self.kind = kind
        if kind == "parsing" and verify:  # the values too, before training starts
            for name in list(self.names):
                try:
                    read_parsing(self.lq.paths[name])
                except DataError as err:
                    self.report.add(str(err), skip_bad)
                    self.names.remove(name)
            if not self.names:
                raise DataError(f"{labels_root}: no usable parsing maps")

    def pair(self, name: str) -> dict[str, Tensor]:
        hq = self.hq.image(name)
        path, size = self.lq.paths[name], tuple(hq.shape[-2:])
        if self.kind in ("sketch", "image"):
            return {LQ: load_image(path, size), HQ: hq}
        labels = read_parsing(path)
        if labels.shape != size:
            labels = np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST))
        return {LQ: parsing_picture(torch.from_numpy(np.array(labels))), HQ: hq}


class TranslationDataModule(RestoreDataModule):
    """RestoreDataModule's folders, synthetic faces and loaders, with label maps as `lq` (module docstring).

    labels: parsing | sketch | xdog | image. label_dir: a folder with {train,val,test}/ of label maps (null:
    data_dir/{split}/<labels>/). synthetic: as RestoreDataModule's, with `labels: true` to write the maps.
    """

    def __init__(self, data_dir: str, labels: str = "parsing", label_dir: str | None = None,
                 image_size: int | None = None, synthetic: dict | None = None, skip_bad: bool = False,
                 verify_images: bool = True, **loader_args) -> None:
        if labels not in LABELS:
            raise ConfigError(f"datamodule.labels={labels}: expected one of {', '.join(LABELS)}")
        super().__init__(data_dir, degradation=None, image_size=image_size, synthetic=synthetic,
                         skip_bad=skip_bad, verify_images=verify_images, **loader_args)
        self.labels, self.label_dir = labels, Path(label_dir) if label_dir else None

    def _folder(self, stage: str) -> ImageFolder | LabelledFaces:
        if stage not in self.folders:
            faces = self.data_dir / stage
            if not faces.is_dir():
                raise DataError(f"{faces}: folder not found (expected {self.data_dir}/{{train,val,test}}/ of "
                                "faces)")
            args = (self.image_size, self.skip_bad, self.verify_images)
            if self.labels == "xdog":
                self.folders[stage] = ImageFolder(faces, *args)
            else:
                root = self.label_dir / stage if self.label_dir else faces / self.labels
                self.folders[stage] = LabelledFaces(root, faces, self.labels, *args)
        return self.folders[stage]

    def _plan(self, stage: str) -> PlanDataset:
        folder = self._folder(stage)
        load = folder.hq_item if isinstance(folder, ImageFolder) else folder.pair
        return PlanDataset({None: (folder.names, load)})

    def degrade(self, batch: dict) -> dict:
        """xdog: the sketch picture of each face, made here on the device."""
        if LQ in batch:
            return batch
        return {**batch, LQ: sketch_picture(1 - pencil_sketch(batch[HQ]))}
