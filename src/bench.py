"""`make bench`: speed and memory of every model and of the data pipeline, as a table and JSON.

Each (entry, size) runs in its own process so peak memory is its own: on CPU the peak resident set size of
that process (imports included, ~0.5 GB), on CUDA `torch.cuda.max_memory_allocated`. Times are the median of
`--repeats` runs after one warm-up. Model entries time `restore()` (inference) and one full training step
(all optimizers, through a real Lightning Trainer) at a small size and at the paper's size; the peak memory
is read after the restore() runs (`restore_peak_mem_MB`: the model built and inference) and again after the
training steps (`peak_mem_MB`).

Whole-photo restoration (`facezoo-restore`'s path: `faces.detector`, `faces.pipeline`), each in a table of its
own: ``restore``, the faces/s of align + restore + paste-back at batch 1 and 8, fp32 and bf16, for the release
architectures (random weights under the official key names, through the importer users' files take);
``restore_split``, the time split detect / align / restore / paste on a photo with three faces and the cost of
the rest against the model's; ``recall``, the detector's recall and false positives on degraded, tilted photos
(`faces.recall`, one pass), the fast pass against the retries.

    python -m facezoo.bench                       # everything
    python -m facezoo.bench --only baseline --sizes small --repeats 5
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path

import numpy as np
import torch

from facezoo.utils.atomic import write_text
from facezoo.utils.memory import PeakMemory


@dataclass(frozen=True)
class ModelEntry:
    """A model at a small and at the paper's size: config overrides, image size, batch size."""

    overrides: dict[str, list[str]]
    sizes: dict[str, int]
    batch: dict[str, int] = field(default_factory=lambda: {"small": 2, "paper": 1})
    task: str = "retouch"
    # more restore() rows per size: (batch, precision), precision as faces.inference (autocast)
    restore_variants: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)


MODELS: dict[str, ModelEntry] = {
    "baseline": ModelEntry(
        overrides={
            "small": ["model.generator.depth=6", "model.generator.base_channels=32"],
            "paper": ["model.generator.depth=8"],  # Pix2Pix "unet_256", 70x70 PatchGAN
        },
        sizes={"small": 64, "paper": 256},
    ),
    "retouchformer": ModelEntry(
        overrides={
            "small": ["experiment=retouchformer_synthetic"],  # the CPU recipe (128 px, 128-d tokens)
            # the paper's sizes (512 px, 512-d tokens, K = 1024) with its VGG-19 perceptual terms; a random
            # VGG-19 stands in when the ImageNet file is absent (same cost)
            "paper": ["model.perceptual.allow_random=true"],
        },
        sizes={"small": 128, "paper": 512},
        batch={"small": 4, "paper": 1},
    ),
    "gpen": ModelEntry(
        overrides={
            "small": ["experiment=gpen_synthetic"],  # 64 px, narrow 0.125, paper objective
            "paper": ["model.prior.from_scratch=true"],  # GPEN-BFR-512: 71.0M generator + 29.0M discriminator
        },
        sizes={"small": 64, "paper": 512},
        batch={"small": 4, "paper": 1},
        task="restore",
    ),
    "gfpgan": ModelEntry(  # the release architecture (GFPGANv1Clean)
        overrides={
            # the CPU recipe's sizes with the clean layers and the full objective (component Ds included)
            "small": ["experiment=gfpgan_synthetic", "model=gfpgan", "model/recipe=gfpgan_paper"],
            # GFPGANv1.3/1.4 sizes (87.1M with the prior; D 24.0M, 3 x 1.1M component Ds); a random VGG-19
            # stands in when the ImageNet file is absent (same cost); ArcFace is skipped without its file
            "paper": ["model.prior.from_scratch=true", "model.perceptual.allow_random=true"],
        },
        sizes={"small": 128, "paper": 512},
        batch={"small": 4, "paper": 1},
        task="restore",
    ),
    "gfpgan_v1": ModelEntry(  # the paper's equalized-LR GFPGANv1 (official training architecture, 76.9M)
        overrides={
            "small": ["experiment=gfpgan_synthetic"],  # the CPU recipe: 128 px, narrow 0.125, simple loss
            "paper": ["model.prior.from_scratch=true", "model.perceptual.allow_random=true"],
        },
        sizes={"small": 128, "paper": 512},
        batch={"small": 4, "paper": 1},
        task="restore",
    ),
    "dfdnet": ModelEntry(  # the official widths; random dictionaries stand in for built ones (same cost)
        overrides={
            "small": ["experiment=dfdnet_synthetic", "model.dictionary=random"],  # 64 px, 16 atoms
            # the release: 512 px, VGG-19 (a random one when the file is absent: same cost), K = 512 atoms
            # as the official dictionaries (3.2 GB of them)
            "paper": ["model.dictionary=random", "model.random_atoms=512",
                      "model.generator.allow_random_vgg=true"],
        },
        sizes={"small": 64, "paper": 512},
        batch={"small": 4, "paper": 1},
        task="restore",
        restore_variants={"paper": ((4, "fp32"), (1, "bf16"), (4, "bf16"))},
    ),
    "stylegan2": ModelEntry(  # unconditional pretraining (GPEN stage 1); restore() draws EMA samples
        overrides={
            "small": ["experiment=stylegan2_synthetic"],  # 64 px, 64 channels, batch 8
            "paper": [],  # config-f widths at 512 px (GPEN-BFR-512's prior)
        },
        sizes={"small": 64, "paper": 512},
        batch={"small": 8, "paper": 2},
        task="restore",
    ),
    "styleganex_sr": ModelEntry(  # super-resolution: E sees the face at 1/4 of its size, G draws 4x that
        overrides={
            # the CPU recipe (a 64 px decoder: 64 px faces from E at 256 px) with a random decoder in place of
            # its pretrained prior file (same cost)
            "small": ["experiment=styleganex_sr_synthetic", "model.prior.required=false"],
            # the official SR model (300.7M encoder + decoder, D 29.0M): 1024 px out of E at 256 px, a random
            # decoder (no prior file; the mean latent of 10^5 codes still runs once when fitting starts).
            # Without its AlexNet file the LPIPS term is skipped (said in the log); the SR recipe has no
            # identity term (id 0). The step: E + G, the D step with R1, the encoder step (L2 + adversarial)
            "paper": [],
        },
        sizes={"small": 64, "paper": 1024},
        batch={"small": 2, "paper": 1},
        task="restore",
        restore_variants={"paper": ((1, "bf16"),)},
    ),
}
PIPELINE = ("degradation", "renderer")
PHOTO = ("restore", "restore_split", "recall")
ENTRIES = (*PIPELINE, *MODELS, *PHOTO)

# the release generators, built from their classes with random weights: at the small size narrow and 128 px
RELEASES: dict[str, dict[str, dict]] = {
    "GFPGANv1Clean": {  # GFPGANv1.3 / v1.4.pth (BasicSR `params_ema`)
        "small": dict(out_size=128, num_style_feat=64, num_mlp=2, narrow=0.125), "paper": dict(out_size=512),
    },
    "GPEN-BFR-512": {  # the bare generator state_dict
        "small": dict(size=128, style_dim=64, n_mlp=2, narrow=0.125), "paper": dict(size=512),
    },
}
RESTORE_PRECISIONS = ("fp32", "bf16")
RESTORE_FACES = 8  # faces per restore call in `restore` (batch 1: eight model calls; batch 8: one)
# the three-face photo of `restore_split`: its side and the scales of the astronaut's head (face ~90 px at 1)
SPLIT_PHOTO = {"small": (512, (0.6, 0.9, 1.2)), "paper": (1024, (1.0, 1.6, 2.5))}
RECALL = {  # detection_recall's set per size; the small one without the no-face photos (they take retries)
    "small": dict(strengths=("clean", "medium"), angles=(0, 20), samples=1, no_face=False),
    "paper": dict(samples=2),  # every strength of faces.recall.STRENGTHS and angle of ANGLES, no-face photos
}


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _batch(task: str, size: int, batch: int, device) -> dict:
    from facezoo.datamodules.synthetic.blemishes import add_blemishes
    from facezoo.datamodules.synthetic.renderer import render_faces

    faces = render_faces(range(batch), size=size, seed=0, device=device)
    if task == "restore":
        return {"lq": faces["image"] * 0.8, "hq": faces["image"], "boxes": faces["boxes"]}
    raw, mask = add_blemishes(faces["image"], faces["parsing"], range(batch), seed=0)
    paired = {"raw": raw, "retouched": faces["image"], "mask": mask}
    return {
        "paired": paired,
        "unpaired_raw": {"raw": raw},
        "unpaired_retouched": {"retouched": faces["image"]},
    }


def _model(name: str, size_key: str, tmp: Path):
    from hydra.utils import instantiate

    from facezoo.utils.compose import compose_config

    return instantiate(
        compose_config("train", [f"model={name}", *MODELS[name].overrides[size_key]], tmp).model
    )


def bench_model(name: str, size_key: str, repeats: int) -> list[dict]:
    import tempfile

    import pytorch_lightning as pl

    from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule

    entry = MODELS[name]
    size, batch_size = entry.sizes[size_key], entry.batch[size_key]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(name, size_key, Path(tmp)).to(device)
    batch = _batch(entry.task, size, batch_size, device)
    lq = batch["lq"] if "lq" in batch else batch["paired"]["raw"]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def infer():
        model.restore(lq)
        sync()

    infer_s = _median_time(infer, repeats)
    restore_mem = _peak_memory_mb(device)  # before the training step: the peak of building + restore()
    variants = [
        _restore_variant(model, name, size_key, batch, precision, repeats, device)
        for batch, precision in entry.restore_variants.get(size_key, ())
    ]

    step_times: list[float] = []

    class StepTimer(pl.Callback):
        def on_train_batch_start(self, *args):
            sync()
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args):
            sync()
            step_times.append(time.perf_counter() - self.start)

    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[StepTimer()],
        accelerator=device.type,
        devices=1,
    )
    trainer.fit(model, datamodule=RepeatedBatchDataModule(batch, repeats + 1))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = {
        "entry": name,
        "size": f"{size_key} {size}px",
        "batch": batch_size,
        "precision": "fp32",
        "params_M": params / 1e6,
        "restore_s": infer_s,
        "train_step_s": statistics.median(step_times[1:]),
        "restore_peak_mem_MB": restore_mem,
        "peak_mem_MB": _peak_memory_mb(device),
        "device": str(device),
    }
    return [row, *variants]


def _restore_variant(model, name: str, size_key: str, batch: int, precision: str, repeats: int,
                     device: torch.device) -> dict:
    """A restore() row at another batch size and precision (faces.inference.prepare: inference mode,
    autocast): the median time and the peak memory during those runs."""
    from facezoo.faces.inference import prepare

    entry = MODELS[name]
    size = entry.sizes[size_key]
    inputs = _batch(entry.task, size, batch, device)
    lq = inputs["lq"] if "lq" in inputs else inputs["paired"]["raw"]
    run = prepare(model, device, precision)
    with PeakMemory(device) as peak:
        seconds = _median_time(lambda: run(lq), repeats)
    return {"entry": name, "size": f"{size_key} {size}px", "batch": batch, "precision": precision,
            "restore_s": seconds, "restore_peak_mem_MB": peak.mb, "device": str(device)}


def degradation_input(size: int, batch: int) -> torch.Tensor:
    """(batch, 3, size, size) smooth random HQ images in [-1, 1] on uint8 levels: noise upsampled from 1/8
    resolution, so blur and JPEG see image-like content."""
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(batch, 3, max(1, size // 8), max(1, size // 8), generator=generator)
    hq = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return torch.round(hq.clamp(0, 1) * 255) / 127.5 - 1


def bench_degradation(size_key: str, repeats: int) -> dict:
    """The batched GFP-GAN degradation on the CPU (its speed against the per-image OpenCV reference:
    tests/reference_degradations.py)."""
    from facezoo.datamodules.degradations.pipeline import BlindDegradation

    size, batch = {"small": 128, "paper": 512}[size_key], 16
    hq, degradation = degradation_input(size, batch), BlindDegradation()
    seeds = iter(range(repeats + 1))  # a new draw every run
    seconds = _median_time(lambda: degradation(hq, next(seeds)), repeats)
    return {
        "entry": "degradation (GFP-GAN, batch 16)",
        "size": f"{size_key} {size}px",
        "batch": batch,
        "img_per_s": batch / seconds,
        "peak_mem_MB": _peak_memory_mb(torch.device("cpu")),
        "device": "cpu",
    }


def bench_renderer(size_key: str, repeats: int) -> dict:
    from facezoo.datamodules.synthetic.blemishes import add_blemishes
    from facezoo.datamodules.synthetic.renderer import render_faces

    size, batch = {"small": 64, "paper": 256}[size_key], 32

    def render():
        faces = render_faces(range(batch), size=size, seed=0)
        add_blemishes(faces["image"], faces["parsing"], range(batch), seed=0)

    seconds = _median_time(render, repeats)
    return {
        "entry": "renderer + blemishes (batch 32)",
        "size": f"{size_key} {size}px",
        "batch": batch,
        "img_per_s": batch / seconds,
        "peak_mem_MB": _peak_memory_mb(torch.device("cpu")),
        "device": "cpu",
    }


def release_model(name: str, size_key: str, device):
    """A release architecture of `RELEASES` with random weights, as `load_model` reads the release file: its
    generator's state under the official names, recognised and imported (no file is read or written)."""
    from facezoo.checkpoints import ModelFile, load_model
    from facezoo.models.components.gfpgan import GFPGANv1Clean
    from facezoo.models.components.gpen import GPENGenerator
    from facezoo.weights.releases import import_release

    torch.manual_seed(0)
    if name == "GFPGANv1Clean":
        state = {"params_ema": GFPGANv1Clean(**RELEASES[name][size_key]).state_dict()}
    else:
        state = GPENGenerator(**RELEASES[name][size_key]).state_dict()
    imported = import_release(state)
    return load_model(ModelFile(Path(f"{name} (random)"), imported.state_dict(), imported=imported), device)


def _detector():
    """`facezoo-restore`'s default detector (conf/restore.yaml)."""
    from omegaconf import OmegaConf

    from facezoo.cli import CONF_DIR
    from facezoo.faces.detector import DlibDetector

    return DlibDetector(**OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "restore.yaml").detector))


def bench_restore(size_key: str, repeats: int) -> list[dict]:
    """faces/s of `FaceRestorer.restore` (align, restore, paste) on `RESTORE_FACES` astronaut photos, one face
    each, at batch 1 and 8, in fp32 and bf16 (autocast: the fast mode, see faces/inference.py), per release
    architecture; `model_share`: the model's part of the time."""
    import skimage.data

    from facezoo.faces.pipeline import FaceRestorer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    photo = skimage.data.astronaut()
    landmarks = [np.stack([f.landmarks for f in _detector().detect(photo)])] * RESTORE_FACES
    photos, faces = [photo] * RESTORE_FACES, sum(len(points) for points in landmarks)
    rows = []
    for name in RELEASES:
        model = release_model(name, size_key, device)
        for precision, batch in product(RESTORE_PRECISIONS, (1, 8)):
            restorer = FaceRestorer(model, batch_size=batch, device=str(device), precision=precision)
            seconds = _median_time(partial(restorer.restore, photos, landmarks), repeats)
            stages = restorer.take_seconds()
            rows.append({
                "entry": "restore", "model": name, "size": f"{size_key} {restorer.size}px", "batch": batch,
                "precision": precision, "faces": faces, "faces_per_s": faces / seconds,
                "model_share": stages["restore"] / sum(stages.values()), "device": str(device),
            })
    return rows


def three_face_photo(side: int, scales) -> np.ndarray:
    """A (side, side, 3) uint8 grey photo with the astronaut's head (skimage, public domain) pasted three
    times, at `scales`, left to right."""
    import cv2
    import skimage.data

    head = skimage.data.astronaut()[40:230, 140:300]  # her face is about (175, 76)-(265, 166)
    heads = [cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for s in scales]
    photo = np.full((side, side, 3), 128, np.uint8)
    gap = (side - sum(h.shape[1] for h in heads)) // (len(heads) + 1)
    x = gap
    for h in heads:
        y = (side - h.shape[0]) // 2
        photo[y:y + h.shape[0], x:x + h.shape[1]] = h
        x += h.shape[1] + gap
    return photo


def bench_restore_split(size_key: str, repeats: int) -> dict:
    """Where the time of one photo with three faces goes (GFPGANv1Clean, the default detector and batch):
    median seconds per stage, each stage's share of their sum, and (detect + align + paste) / restore."""
    from facezoo.faces.pipeline import FaceRestorer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    side, scales = SPLIT_PHOTO[size_key]
    photo, detector = three_face_photo(side, scales), _detector()
    restorer = FaceRestorer(release_model("GFPGANv1Clean", size_key, device), device=str(device))

    def one_photo() -> dict:
        start = time.perf_counter()
        faces, _ = detector.detect_with_report(photo)
        detect = time.perf_counter() - start
        restorer.restore([photo], [np.stack([f.landmarks for f in faces])])
        return {"faces": len(faces), "detect": detect, **restorer.take_seconds()}

    one_photo()  # warm-up
    runs = [one_photo() for _ in range(repeats)]
    stages = {stage: statistics.median(r[stage] for r in runs) for stage in ("detect", *restorer.seconds)}
    total = sum(stages.values())
    return {
        "entry": "restore_split", "model": "GFPGANv1Clean",
        "size": f"{size_key} {side}px photo, {restorer.size}px crops",
        "faces": runs[-1]["faces"], **{f"{k}_s": v for k, v in stages.items()}, "total_s": total,
        **{f"{k}_share": v / total for k, v in stages.items()},
        "rest_over_restore": (total - stages["restore"]) / stages["restore"], "device": str(device),
    }


def bench_recall(size_key: str) -> list[dict]:
    """`faces.recall.detection_recall` on the `RECALL` set: per strength and angle the fast pass (no retries)
    against the default detector (retries), then the photos with a face together."""
    from facezoo.faces.detector import DlibDetector
    from facezoo.faces.recall import detection_recall

    detectors = {"fast": DlibDetector(recall=False), "retries": _detector()}
    raw = detection_recall(detectors, **RECALL[size_key])
    rows: dict[tuple, dict] = {}
    for r in raw:
        row = rows.setdefault((r["strength"], r["angle"]), {
            "entry": "recall", "size": size_key, "strength": r["strength"], "angle": r["angle"],
            "images": r["images"],
        })
        for key in ("recall", "false_positives", "landmark_error", "seconds_per_image"):
            row[f"{key}_{r['detector']}"] = r[key]
    total = {"entry": "recall", "size": size_key, "strength": "all faces", "angle": "all"}
    for name in detectors:
        with_face = [r for r in raw if r["detector"] == name and r["recall"] is not None]
        total["images"] = sum(r["images"] for r in with_face)
        total[f"recall_{name}"] = sum(r["found"] for r in with_face) / total["images"]
        total[f"false_positives_{name}"] = sum(r["false_positives"] for r in with_face)
    return [*rows.values(), total]


def run_one(entry: str, size_key: str, repeats: int) -> list[dict]:
    torch.set_num_threads(min(torch.get_num_threads(), 16))
    if entry == "degradation":
        return [bench_degradation(size_key, repeats)]
    if entry == "renderer":
        return [bench_renderer(size_key, repeats)]
    if entry == "restore":
        return bench_restore(size_key, repeats)
    if entry == "restore_split":
        return [bench_restore_split(size_key, repeats)]
    if entry == "recall":
        return bench_recall(size_key)
    return bench_model(entry, size_key, repeats)


TABLES = {  # a row's table: its entry's, else "models"
    "models": ["entry", "size", "batch", "precision", "params_M", "restore_s", "train_step_s", "img_per_s",
               "restore_peak_mem_MB", "peak_mem_MB", "device"],
    "restore": ["model", "size", "precision", "batch", "faces", "faces_per_s", "model_share", "device"],
    "restore_split": ["model", "size", "faces", "detect_s", "align_s", "restore_s", "paste_s", "total_s",
                      "detect_share", "align_share", "restore_share", "paste_share", "rest_over_restore",
                      "device"],
    "recall": ["size", "strength", "angle", "images", "recall_fast", "recall_retries", "false_positives_fast",
               "false_positives_retries", "landmark_error_fast", "landmark_error_retries",
               "seconds_per_image_fast", "seconds_per_image_retries"],
}


def tables(rows: list[dict]) -> str:
    """One markdown table per kind of row (`TABLES`), in that order, each under a heading."""
    parts = []
    for name, columns in TABLES.items():
        mine = [r for r in rows if (r["entry"] if r["entry"] in TABLES else "models") == name]
        if mine:
            parts.append(f"## {name}\n\n{_table(mine, columns)}")
    return "\n\n".join(parts)


def _table(rows: list[dict], columns: list[str]) -> str:
    columns = [c for c in columns if any(c in r for r in rows)]

    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help=f"entries (default: all of {list(ENTRIES)})"
    )
    parser.add_argument("--sizes", nargs="*", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench", help="folder for results.json and results.md")
    parser.add_argument("--run", nargs=2, metavar=("ENTRY", "SIZE"), help=argparse.SUPPRESS)  # one child job
    args = parser.parse_args(argv)
    if args.run:
        print("BENCH " + json.dumps(run_one(*args.run, args.repeats)))
        return
    entries = args.only or list(ENTRIES)
    unknown = [e for e in entries if e not in ENTRIES]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {list(ENTRIES)}")
    rows = []
    for entry in entries:
        for size_key in args.sizes:
            cmd = [
                sys.executable,
                "-m",
                "facezoo.bench",
                "--run",
                entry,
                size_key,
                "--repeats",
                str(args.repeats),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
            if proc.returncode or not lines:
                print(f"bench: {entry} {size_key} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows += json.loads(lines[-1][6:])
            print(f"  {entry:13s} {size_key:6s} done", file=sys.stderr)
    table = tables(rows)
    out = Path(args.out)
    write_text(out / "results.json", json.dumps(rows, indent=1))
    write_text(out / "results.md", table + "\n")
    print(table)
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.md'}")


if __name__ == "__main__":
    main()
