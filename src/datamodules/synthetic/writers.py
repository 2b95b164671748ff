"""Writers of the synthetic data sets on disk.

`write_ffhqr` writes the FFHQR layout (raw `source`, retouched `target`, soft `mask`, `boxes.json`) and
`write_faces` a folder of clean faces for restoration; both finish with a `DONE.json`, which makes a second
call with the same arguments a no-op and lets an interrupted write be detected and redone.
CLI (`facezoo-synth`): `python -m facezoo.datamodules.synthetic.writers OUT [--size 256] [--train 200 --val 20
--test 20] [--seed 0] [--faces-only N]`.
"""

import argparse
import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import torch
from torch import Tensor

from facezoo.datamodules.face_labels import to_celebamask
from facezoo.datamodules.synthetic.blemishes import add_blemishes
from facezoo.datamodules.synthetic.renderer import render_faces
from facezoo.datamodules.toon import cartoon
from facezoo.utils.atomic import write_text
from facezoo.utils.console import progress
from facezoo.utils.image_io import write_image

_FORMAT_VERSION = 2  # bump when renderer.py or blemishes.py change their pixels, so old folders are rewritten
_DEFAULT_SPLITS = MappingProxyType({"train": 200, "val": 20, "test": 20})
_ONCE = "once: later runs with the same options reuse it"
LABEL_FOLDERS = ("parsing", "sketch")  # write_faces(labels=True): the label maps beside the faces

log = logging.getLogger("facezoo")


def _args_record(**kwargs) -> dict:
    return {"format_version": _FORMAT_VERSION, **kwargs}


def _is_done(root: Path, record: dict) -> bool:
    try:
        return json.loads((root / "DONE.json").read_text()) == record
    except (OSError, ValueError):
        return False


def _write_json(path: Path, data: dict) -> None:
    """One entry per line, written atomically."""
    lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in data.items())
    write_text(path, "{\n" + lines + "\n}\n" if data else "{}\n")


def _batches(start: int, stop: int, batch_size: int, what: str):
    """Index batches of [start, stop); the progress of `what` is shown as each batch is done."""
    step = max(1, int(batch_size))
    with progress(stop - start, what, "faces") as advance:
        for lo in range(start, stop, step):
            batch = list(range(lo, min(lo + step, stop)))
            yield batch
            advance(len(batch))


def _box_list(boxes: Tensor) -> list[list[float]]:
    return [[round(float(v), 2) for v in box] for box in boxes]


def write_ffhqr(root, sizes: Mapping[str, int] = _DEFAULT_SPLITS, size: int = 256, seed: int = 0,
                batch_size: int = 32) -> Path:
    """Write the FFHQR layout under `root`: {split}/source (raw), {split}/target (clean), {split}/mask (soft
    8-bit) PNGs named by zero-padded global index, and {split}/boxes.json (name -> 4 boxes, COMPONENTS
    order). Splits take consecutive disjoint index ranges in the order given. DONE.json is written last;
    if it already records the same arguments nothing is done, otherwise the splits are rewritten."""
    root, sizes = Path(root), {str(k): int(v) for k, v in dict(sizes).items()}
    record = _args_record(kind="ffhqr", sizes=sizes, size=int(size), seed=int(seed))
    if _is_done(root, record):
        return root
    (root / "DONE.json").unlink(missing_ok=True)
    width, start = max(5, len(str(max(sum(sizes.values()) - 1, 0)))), 0
    log.info("rendering the synthetic retouching set into %s (%s)", root, _ONCE)
    for split, n in sizes.items():
        folder = root / split
        shutil.rmtree(folder, ignore_errors=True)
        boxes = {}
        for batch in _batches(start, start + n, batch_size, f"rendering {split}"):
            faces = render_faces(batch, size, seed)
            raw, mask = add_blemishes(faces["image"], faces["parsing"], batch, seed)
            for j, index in enumerate(batch):
                name = f"{index:0{width}d}"
                write_image(folder / "source" / f"{name}.png", raw[j], durable=False)
                write_image(folder / "target" / f"{name}.png", faces["image"][j], durable=False)
                write_image(folder / "mask" / f"{name}.png", mask[j], durable=False)
                boxes[name] = _box_list(faces["boxes"][j])
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "boxes.json", boxes)
        start += n
    _write_json(root / "DONE.json", record)
    return root


def write_faces(root, n: int, size: int = 256, seed: int = 0, batch_size: int = 32,
                labels: bool = False, toon: bool = False) -> Path:
    """Write `n` clean faces as root/{name}.png (zero-padded index) plus root/boxes.json; same DONE.json
    idempotency as `write_ffhqr`. `labels`: also each face's label maps, the inputs of StyleGANEX's
    translation tasks (datamodules/translation.py): root/parsing/{name}.png, the 19 CelebAMask-HQ labels as an
    8-bit label PNG (face_labels.to_celebamask), and root/sketch/{name}.png, the renderer's sketch in the
    official polarity (dark lines on white, 8-bit gray). `toon`: the faces' cartoon versions instead
    (datamodules/toon.py: the toon domain of experiment=stylegan2_toon_finetune)."""
    root = Path(root)
    optional = {"labels": True} if labels else {}  # records (and folders) written without labels stay valid
    optional |= {"toon": True} if toon else {}
    record = _args_record(kind="faces", n=int(n), size=int(size), seed=int(seed), **optional)
    if _is_done(root, record):
        return root
    (root / "DONE.json").unlink(missing_ok=True)
    if root.is_dir():
        for old in root.iterdir():
            if re.fullmatch(r"\d+\.png", old.name):
                old.unlink()
        for folder in LABEL_FOLDERS:
            shutil.rmtree(root / folder, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    width, boxes = max(5, len(str(max(int(n) - 1, 0)))), {}
    log.info("rendering synthetic faces into %s (%s)", root, _ONCE)
    for batch in _batches(0, int(n), batch_size, f"rendering {root.name}"):
        faces = render_faces(batch, size, seed)
        images = cartoon(faces["image"]) if toon else faces["image"]
        if labels:
            parsing = to_celebamask(faces["parsing"]).to(torch.uint8)
            sketch = (255 * (1 - faces["sketch"])).round().to(torch.uint8)
        for j, index in enumerate(batch):
            name = f"{index:0{width}d}"
            write_image(root / f"{name}.png", images[j], durable=False)
            boxes[name] = _box_list(faces["boxes"][j])
            if labels:
                write_image(root / "parsing" / f"{name}.png", parsing[j], durable=False)
                write_image(root / "sketch" / f"{name}.png", sketch[j], durable=False)
    _write_json(root / "boxes.json", boxes)
    _write_json(root / "DONE.json", record)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="facezoo-synth", description="Render the procedural face data set.")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    for split, n in _DEFAULT_SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=n, help=f"number of {split} faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--faces-only", type=int, metavar="N", help="write N clean faces only (restoration)")
    parser.add_argument("--toon", action="store_true", help="with --faces-only: their cartoon versions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the rendering's progress lines
    if args.faces_only is not None:
        out = write_faces(args.out, args.faces_only, args.size, args.seed, args.batch_size, toon=args.toon)
    else:
        sizes = {"train": args.train, "val": args.val, "test": args.test}
        out = write_ffhqr(args.out, sizes, args.size, args.seed, args.batch_size)
    print(out)


if __name__ == "__main__":
    main()
