"""Folder datasets: the FFHQR layout for retouching and plain image folders for restoration.

FFHQR layout: `root/{train,val,test}/{source,target[,mask]}/<name>.<ext>` with the same file stem across
the sub-folders (source = raw, target = retouched, mask = soft ground-truth imperfection mask, optional).
Problems are found at setup, reported by file name: a missing folder, a file without its partner, two files
for one name, an unreadable image (every file is decoded, in a thread pool: PIL releases the GIL while
decoding), a (source, target[, mask]) pair whose images differ in size. With `skip_bad=True` such files are
skipped and counted instead. `verify=False` skips the decoding pass and the size checks that come with it.
The files found readable are listed by (bytes, mtime) in a cache outside the data
(`$XDG_CACHE_HOME/facezoo/checked/`, default `~/.cache`: data folders are never written to) and not decoded
again while both are unchanged (delete the cache to decode everything again).
LQ images of a paired LQ/HQ test set are resized to their HQ image; LQ images whose aspect ratio differs
from their HQ image's are stretched, with one warning per folder.
Items are uint8 tensors; conversion to float [-1, 1] happens on the device (DataModule hooks).
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facezoo.datamodules.batch import HQ, LQ, MASK, RAW, RETOUCHED
from facezoo.utils.atomic import write_text
from facezoo.utils.console import progress
from facezoo.utils.errors import DataError, FacezooError
from facezoo.utils.image_io import decoded_size, list_images, read_mask, read_rgb_uint8, uint8_to_tensor

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


Size = tuple[int, int]  # (width, height), as PIL gives it
SHOW_PROGRESS_FROM = 2000  # files: a check this long shows its progress (a bar, or a line every 30 s)


def checked_list(root: Path) -> Path:
    """Where the files of `root` found readable are listed: {file: [bytes, mtime_ns, width, height]}."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]
    return cache / "facezoo" / "checked" / f"{key}.json"


def _read_checked(root: Path) -> dict[str, list[int]]:
    """The list of `root` (`checked_list`), or nothing when it is missing or unreadable (all is decoded)."""
    try:
        entries = json.loads(checked_list(root).read_text())
        return {name: v for name, v in entries.items() if isinstance(v, list) and len(v) == 4}
    except (OSError, ValueError, AttributeError):  # missing, not JSON, not an object
        return {}


def _inspect(path: Path, known: list[int] | None) -> list[int] | DataError:
    """[bytes, mtime_ns, width, height] of a readable file (decoded unless `known` has the same bytes and
    mtime), or the error naming it."""
    try:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        return known if known is not None and known[:2] == stamp else [*stamp, *decoded_size(path)]
    except DataError as err:
        return err
    except OSError as err:  # e.g. a broken link
        return DataError(f"{path}: not readable ({err.strerror or err})")


def check_images(root: Path, paths: Sequence[Path], report: FolderReport, skip_bad: bool) -> dict[Path, Size]:
    """Decode every file under `root`, in a thread pool: the (width, height) of each readable one. An
    unreadable file is raised (the first in `paths` order) or, with `skip_bad`, added to `report` and left
    out. Files unchanged since `checked_list(root)` listed them readable are not decoded again."""
    start, sizes, unchanged = time.perf_counter(), {}, 0
    names = [path.relative_to(root).as_posix() for path in paths]
    known = _read_checked(root)
    checked = dict(known)  # files of earlier checks stay listed: a changed file never matches its old entry
    pool = ThreadPoolExecutor(thread_name_prefix="facezoo-check")
    shown = progress(len(paths), f"checking {root}", "images") if len(paths) >= SHOW_PROGRESS_FROM else None
    try:
        with shown or nullcontext(lambda n: None) as advance:
            results = zip(paths, names, pool.map(_inspect, paths, map(known.get, names)), strict=True)
            for path, name, found in results:
                advance(1)
                if isinstance(found, DataError):
                    report.add(str(found), skip_bad)
                else:
                    checked[name], sizes[path] = found, (found[2], found[3])
                    unchanged += found is known.get(name)
    finally:
        pool.shutdown(cancel_futures=True)
        if checked != known:  # also after a bad file stopped the check: what was decoded is kept
            try:
                write_text(checked_list(root), json.dumps(checked))
            except FacezooError as err:  # e.g. no writable cache folder: decode again next time
                log.debug("%s", err)
    log.info(
        "%s: checked %d images in %.1f s (%d unchanged since the last check)",
        root,
        len(paths),
        time.perf_counter() - start,
        unchanged,
    )
    return sizes


def _by_stem(paths: list[Path], report: FolderReport, skip_bad: bool) -> dict[str, Path]:
    """name -> file; two files for one name (a.png, a.jpg) are refused, or both skipped."""
    files: dict[str, list[Path]] = {}
    for path in paths:
        files.setdefault(path.stem, []).append(path)
    for stem, found in files.items():
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            report.add(
                f"{found[0].parent}: {names} share the name {stem!r} (expected one file per name)", skip_bad
            )
    return {stem: found[0] for stem, found in files.items() if len(found) == 1}


def _same_size(paths: list[Path], sizes: dict[Path, Size], report: FolderReport, skip_bad: bool) -> bool:
    """Whether the files of one item (source, target[, mask]) have one size; a mismatch is reported."""
    first = paths[0]
    for other in paths[1:]:
        if sizes[other] != sizes[first]:
            (w, h), (w2, h2) = sizes[first], sizes[other]
            report.add(
                f"{first} is {w}x{h} but its partner {other} is {w2}x{h2} (expected the same size)", skip_bad
            )
            return False
    return True


def _resize(image: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    """To (height, width) `shape` (None: as is): INTER_AREA to shrink, bicubic to enlarge."""
    if shape is None or image.shape[:2] == shape:
        return image
    shrink = image.shape[0] > shape[0]
    return cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def load_image(path: Path, size: int | tuple[int, int] | None) -> torch.Tensor:
    """An image file as a (3, H, W) uint8 tensor, resized to `size` (a side or (height, width)) if given."""
    shape = (size, size) if isinstance(size, int) else size
    return uint8_to_tensor(_resize(read_rgb_uint8(path), shape))


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
        sources, targets = (
            _by_stem(list_images(self.root / s), self.report, skip_bad) for s in ("source", "target")
        )
        has_masks = (self.root / "mask").is_dir()
        masks = _by_stem(list_images(self.root / "mask"), self.report, skip_bad) if has_masks else {}
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
            files = {s: [sources[s], targets[s]] + ([masks[s]] if masks else []) for s in stems}
            sizes = check_images(self.root, [p for s in stems for p in files[s]], self.report, skip_bad)
            stems = [
                s
                for s in stems
                if all(p in sizes for p in files[s]) and _same_size(files[s], sizes, self.report, skip_bad)
            ]
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
        self.paths = _by_stem(list_images(self.root), self.report, skip_bad)
        self.sizes: dict[str, Size] = {}  # name -> (width, height) of the file, when verified
        if verify:
            sizes = check_images(self.root, list(self.paths.values()), self.report, skip_bad)
            self.sizes = {stem: sizes[path] for stem, path in self.paths.items() if path in sizes}
            self.paths = {stem: self.paths[stem] for stem in self.sizes}
        if not self.paths:
            raise DataError(f"{self.root}: no images found")
        self.report.summarize(self.root, len(self.paths))
        self.names = sorted(self.paths)

    def image(self, name: str) -> torch.Tensor:
        return load_image(self.paths[name], self.image_size)

    def hq_item(self, name: str) -> dict[str, torch.Tensor]:
        return {HQ: self.image(name)}


class PairedImageFolders:
    """Matched LQ / HQ folders (a restoration test set such as CelebA-Test), paired by file stem."""

    def __init__(
        self, lq_root, hq_root, image_size: int | None = None, skip_bad: bool = False, verify: bool = True
    ) -> None:
        self.lq = ImageFolder(lq_root, None, skip_bad, verify)
        self.hq = ImageFolder(hq_root, image_size, skip_bad, verify)
        self.report = self.hq.report
        for stem in sorted(self.lq.paths.keys() ^ self.hq.paths.keys()):
            found, other = (self.lq, self.hq) if stem in self.lq.paths else (self.hq, self.lq)
            self.report.add(f"{found.paths[stem]}: no partner in {other.root} (expected {stem}.*)", skip_bad)
        self.names = sorted(self.lq.paths.keys() & self.hq.paths.keys())
        if not self.names:
            raise DataError(f"{lq_root} and {hq_root}: no matching LQ/HQ pairs")
        if verify:
            self._warn_aspect()

    def _warn_aspect(self) -> None:
        """One warning for the LQ images whose aspect ratio is not their HQ image's (beyond one pixel of
        rounding): they will be stretched to the HQ size. Another size at the same aspect is normal."""

        def stretched(name: str) -> bool:
            (w, h), (hq_w, hq_h) = self.lq.sizes[name], self.hq.sizes[name]
            return abs(h - w * hq_h / hq_w) > 1 and abs(w - h * hq_w / hq_h) > 1

        odd = [name for name in self.names if stretched(name)]
        if odd:
            (w, h), (hq_w, hq_h) = self.lq.sizes[odd[0]], self.hq.sizes[odd[0]]
            example = f"{self.lq.paths[odd[0]].name} is {w}x{h}, its HQ {hq_w}x{hq_h}"
            log.warning(
                f"{self.lq.root}: {len(odd)} of {len(self.names)} LQ images have another aspect ratio than "
                f"their HQ image (e.g. {example}); they are stretched to the HQ size"
            )

    def pair(self, name: str) -> dict[str, torch.Tensor]:
        hq = self.hq.image(name)
        return {LQ: load_image(self.lq.paths[name], tuple(hq.shape[-2:])), HQ: hq}


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
