"""Folder datasets: the FFHQR layout for retouching and plain image folders for restoration.

FFHQR layout: `root/{train,val,test}/{source,target[,mask]}/<name>.<ext>` with the same file stem across
the sub-folders (source = raw, target = retouched, mask = soft ground-truth imperfection mask, optional).
Problems are found at setup, reported by file name: a missing folder, a file without its partner, an
unreadable image. With `skip_bad=True` such files are skipped and counted instead.
Items are uint8 tensors; conversion to float [-1, 1] happens on the device (DataModule hooks).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from facezoo.datamodules.batch import HQ, LQ, MASK, RAW, RETOUCHED
from facezoo.utils.errors import DataError
from facezoo.utils.image_io import list_images, read_mask, read_rgb_uint8, uint8_to_tensor

log = logging.getLogger("facezoo")


@dataclass
class FolderReport:
    """What setup found wrong (only filled when bad files are skipped rather than raised)."""

    skipped: list[str] = field(default_factory=list)

    def add(self, message: str, skip_bad: bool) -> None:
        if not skip_bad:
            raise DataError(message)
        self.skipped.append(message)
        log.warning("skipping %s", message)

    def summarize(self, root: Path, kept: int) -> None:
        if self.skipped:
            log.warning("%s: skipped %d bad files, using %d", root, len(self.skipped), kept)


def _verify(path: Path, report: FolderReport, skip_bad: bool) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception as err:  # PIL raises many types for corrupt files
        report.add(f"{path}: not a readable image ({err.__class__.__name__}: {err})", skip_bad)
        return False


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[:2] == (size, size):
        return image
    shrink = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def load_image(path: Path, size: int | None) -> torch.Tensor:
    return uint8_to_tensor(_resize(read_rgb_uint8(path), size))


def load_mask(path: Path, size: int | None) -> torch.Tensor:
    mask = read_mask(path)
    if size is not None and mask.shape != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.round(mask * 255.0).astype(np.uint8))[None]


class RetouchFolder:
    """One split of an FFHQR-layout folder: matched (source, target[, mask]) files by stem."""

    def __init__(
        self, root: str | Path, image_size: int | None = None, skip_bad: bool = False, verify: bool = True
    ) -> None:
        self.root, self.image_size = Path(root), image_size
        self.report = FolderReport()
        sources = {p.stem: p for p in list_images(self.root / "source")}
        targets = {p.stem: p for p in list_images(self.root / "target")}
        masks = {p.stem: p for p in list_images(self.root / "mask")} if (self.root / "mask").is_dir() else {}
        for stem in sorted(sources.keys() ^ targets.keys()):
            lack = "target" if stem in sources else "source"
            found = (sources if stem in sources else targets)[stem]
            self.report.add(f"{found}: no partner in {self.root / lack} (expected {stem}.* there)", skip_bad)
        stems = sorted(sources.keys() & targets.keys())
        if masks:
            for stem in [s for s in stems if s not in masks]:
                self.report.add(
                    f"{sources[stem]}: no mask in {self.root / 'mask'} (expected {stem}.*)", skip_bad
                )
            stems = [s for s in stems if s in masks]
        if verify:
            files = [(s, [sources[s], targets[s]] + ([masks[s]] if masks else [])) for s in stems]
            stems = [s for s, paths in files if all(_verify(p, self.report, skip_bad) for p in paths)]
        if not stems:
            raise DataError(f"{self.root}: no usable (source, target) pairs found")
        self.report.summarize(self.root, len(stems))
        self.names = stems
        self.sources, self.targets, self.masks = sources, targets, masks

    @property
    def has_mask(self) -> bool:
        return bool(self.masks)

    def raw(self, name: str) -> torch.Tensor:
        return load_image(self.sources[name], self.image_size)

    def retouched(self, name: str) -> torch.Tensor:
        return load_image(self.targets[name], self.image_size)

    def mask(self, name: str) -> torch.Tensor:
        return load_mask(self.masks[name], self.image_size)

    def raw_only(self, name: str) -> dict[str, torch.Tensor]:
        return {RAW: self.raw(name)}

    def retouched_only(self, name: str) -> dict[str, torch.Tensor]:
        return {RETOUCHED: self.retouched(name)}

    def pair(self, name: str) -> dict[str, torch.Tensor]:
        item = {RAW: self.raw(name), RETOUCHED: self.retouched(name)}
        if self.has_mask:
            item[MASK] = self.mask(name)
        return item


class ImageFolder:
    """A flat folder of images (e.g. HQ faces for restoration)."""

    def __init__(
        self, root: str | Path, image_size: int | None = None, skip_bad: bool = False, verify: bool = True
    ) -> None:
        self.root, self.image_size = Path(root), image_size
        self.report = FolderReport()
        paths = list_images(self.root)
        if verify:
            paths = [p for p in paths if _verify(p, self.report, skip_bad)]
        if not paths:
            raise DataError(f"{self.root}: no images found")
        self.report.summarize(self.root, len(paths))
        self.paths = {p.stem: p for p in paths}
        self.names = sorted(self.paths)

    def image(self, name: str) -> torch.Tensor:
        return load_image(self.paths[name], self.image_size)

    def hq_item(self, name: str) -> dict[str, torch.Tensor]:
        return {HQ: self.image(name)}


class PairedImageFolders:
    """Matched LQ / HQ folders (a restoration test set such as CelebA-Test), paired by file stem."""

    def __init__(self, lq_root, hq_root, image_size: int | None = None, skip_bad: bool = False) -> None:
        self.lq, self.hq = ImageFolder(lq_root, None, skip_bad), ImageFolder(hq_root, image_size, skip_bad)
        self.report = self.hq.report
        for stem in sorted(self.lq.paths.keys() ^ self.hq.paths.keys()):
            found, other = (self.lq, self.hq) if stem in self.lq.paths else (self.hq, self.lq)
            self.report.add(f"{found.paths[stem]}: no partner in {other.root} (expected {stem}.*)", skip_bad)
        self.names = sorted(self.lq.paths.keys() & self.hq.paths.keys())
        if not self.names:
            raise DataError(f"{lq_root} and {hq_root}: no matching LQ/HQ pairs")

    def pair(self, name: str) -> dict[str, torch.Tensor]:
        hq = self.hq.image(name)
        return {LQ: load_image(self.lq.paths[name], hq.shape[-1]), HQ: hq}


class PlanDataset(Dataset):
    """Serves draws of `MultiSubsetSampler`: (draw_id, i_0, i_1, ...) -> one item with a part per subset."""

    def __init__(self, parts: dict[str | None, tuple[list[str], callable]]) -> None:
        # group name -> (names, loader(name) -> dict of tensors); group None merges into the top level
        self.parts = list(parts.items())

    @property
    def sizes(self) -> list[int]:
        return [len(names) for _, (names, _) in self.parts]

    def __len__(self) -> int:
        return max(self.sizes)

    def __getitem__(self, draw: tuple[int, ...]) -> dict:
        item = {"draw": draw[0]}
        for (group, (names, load)), index in zip(self.parts, draw[1:], strict=True):
            part = {**load(names[index]), "index": index}
            if group is None:
                item.update(part)
            else:
                item[group] = part
        return item
