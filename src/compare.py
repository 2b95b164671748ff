"""Compare methods on one test set under one protocol: `facezoo-compare methods=[...] test_set.hq_dir=...`
(Hydra, conf/compare.yaml) over the plain function `compare(cfg)`.

- Methods: any files `load_model` reads (facezoo checkpoints or run folders, official releases), each run
  through `restore()` only. One that cannot be loaded, whose input contract does not fit the set's size
  (`check_image_size`), or that fails while restoring is named in one line and marked failed in the tables;
  the others still run (and the command ends with exit code 1).
- Test set (restoration): a paired LQ/HQ folder (matched by file stem; unmatched or unreadable files are named
  in one line each and skipped), or an HQ folder and a degradation protocol
  (conf/datamodule/degradation/<name>.yaml), FROZEN to disk once (`freeze_protocol`): each image degraded with
  a seed of its own, LQ and HQ written as PNG with a manifest of the exact parameters and the files' sha256,
  and re-used (checksums verified) by every later run. Regenerating it gives the same bytes.
- Test set (retouching, `test_set.retouch_dir`): one split of an FFHQR-layout folder, {source, target[,
  mask]}: the source is the input, the target the reference, the mask the true imperfections.
- Metrics per image and averaged: PSNR / SSIM (`metrics.image_quality`, as eval), LPIPS; for restoration the
  identity distance (dlib's descriptor, `metrics.face_descriptor`; ArcFace when its file is found), LMD
  (`metrics.landmark_distance`) and FID against the HQ set (only with torch-fidelity and its Inception file);
  for retouching the Soft-IoU of a method's predicted mask against the true mask. And the cost (seconds per
  face and peak memory of `restore()` in this run). A metric whose network file is not found is
  "unavailable", never computed with random weights. Reference rows: `lq` scores the degraded inputs
  themselves; for retouching `input` (the source as the answer) and `constant_mask` (the best constant mask's
  Soft-IoU), the references facezoo-eval reports as psnr_input and soft_iou_const.
- Outputs in the run folder: results.{csv,md,json}, per_image.csv, protocol.md (every choice of the protocol
  and the checksums of every network file), grid.png (rows: faces; columns: LQ | methods | HQ), plots/, and
  outputs/<method>/ (the restored images; retouching: their masks in mask/ and masks.png); with
  `logger=wandb` the table and the grids go to one wandb run.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning/torchmetrics import torchvision)
# isort: on
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from facezoo.checkpoints import load_model, open_model_file
from facezoo.cli import CONF_DIR, check_seed, device_option, error_line, run_cli
from facezoo.datamodules.batch import HQ, LQ, MASK, RAW, RETOUCHED
from facezoo.datamodules.folders import ImageFolder, PairedImageFolders, RetouchFolder, load_image
from facezoo.faces.detector import DlibDetector
from facezoo.metrics.face_descriptor import FaceDescriptor
from facezoo.metrics.image_quality import DATA_RANGE, psnr_ssim_metrics
from facezoo.metrics.landmark_distance import LandmarkDistance
from facezoo.metrics.lpips import build_lpips
from facezoo.metrics.soft_iou import ConstantMaskSoftIoU, SoftIoU
from facezoo.utils.atomic import write_text
from facezoo.utils.errors import ConfigError, DataError, FacezooError
from facezoo.utils.grid import make_grid
from facezoo.utils.image_io import read_rgb_uint8, to_float, to_uint8, write_image
from facezoo.utils.instantiate import instantiate
from facezoo.utils.memory import PeakMemory
from facezoo.utils.results import finish_loggers
from facezoo.weights.resolver import resolve

log = logging.getLogger("facezoo")

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception
METRICS = {  # per image
    "restore": ("psnr", "ssim", "lpips", "id_dlib", "id_arcface", "lmd"),
    "retouch": ("psnr", "ssim", "lpips", "soft_iou"),
}
SET_METRICS = {"restore": ("fid",), "retouch": ()}
COST = ("sec_per_face", "peak_mem_mb")
LOWER_IS_BETTER = {"lpips", "id_dlib", "id_arcface", "lmd", "fid", *COST}
LQ_ROW, INPUT_ROW, CONSTANT_MASK_ROW = "lq", "input", "constant_mask"
INPUT_ROWS = {"restore": LQ_ROW, "retouch": INPUT_ROW}  # the row that scores the inputs as the answer
REFERENCE_ROWS = (LQ_ROW, INPUT_ROW, CONSTANT_MASK_ROW)


def columns(task: str) -> tuple[str, ...]:
    """The metric and cost columns of a task's tables."""
    return (*METRICS[task], *SET_METRICS[task], *COST)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the frozen degradation protocol ------------------------------------------------------------------------


def degradation(name: str):
    """The `BlindDegradation` of conf/datamodule/degradation/<name>.yaml."""
    folder = Path(CONF_DIR) / "datamodule" / "degradation"
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    if name not in known:
        raise ConfigError(f"test_set.degradation={name}: expected one of {', '.join(known)}")
    return instantiate(OmegaConf.load(folder / f"{name}.yaml"), f"test_set.degradation={name}")


def image_seed(seed: int, name: str) -> int:
    """The degradation seed of one image: from the protocol's seed and the image's name only."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "big")


def _plain(value: torch.Tensor):
    return value[0].tolist()


def _protocol(hq_dir: Path, name: str, seed: int, config) -> dict:
    return {"format": MANIFEST_FORMAT, "hq_dir": str(hq_dir.resolve()), "degradation": name, "seed": seed,
            "config": json.loads(json.dumps(dataclasses.asdict(config)))}


def _verify_frozen(folder: Path, expected: dict, sources: dict[str, Path]) -> dict:
    """The manifest of an existing frozen set, checked against this protocol and the files on disk."""
    manifest = json.loads((folder / MANIFEST).read_text())
    head = {k: manifest.get(k) for k in expected}
    if head != expected:
        raise DataError(f"{folder}: frozen with another protocol ({MANIFEST} differs from this degradation, "
                        "seed or HQ folder); set test_set.frozen_dir to another folder or delete this one")
    if set(manifest["images"]) != set(sources):
        raise DataError(f"{folder}: frozen from other HQ files than {expected['hq_dir']} holds now; set "
                        "test_set.frozen_dir to another folder or delete this one")
    for stem, entry in manifest["images"].items():
        if sha256(sources[stem]) != entry["source_sha256"]:
            raise DataError(f"{sources[stem]}: changed since {folder} was frozen from it")
        for part in ("lq", "hq"):
            path = folder / part / f"{stem}.png"
            if not path.is_file() or sha256(path) != entry[f"{part}_sha256"]:
                raise DataError(f"{path}: missing or changed since it was frozen ({MANIFEST} checksum)")
    return manifest


def freeze_protocol(hq_dir: str | Path, name: str, seed: int, folder: str | Path) -> dict:
    """Degrade every readable image of `hq_dir` with the `name` protocol into `folder`/{lq,hq}/<stem>.png
    and write `folder`/manifest.json (protocol, per-image seed and parameters, sha256 of source, LQ and HQ
    files; written last: its presence marks a complete set). An existing complete set is verified and
    re-used. → the manifest."""
    hq_dir, folder = Path(hq_dir), Path(folder)
    deg = degradation(name)
    images = ImageFolder(hq_dir, skip_bad=True)
    expected = _protocol(hq_dir, name, seed, deg.config)
    if (folder / MANIFEST).is_file():
        return _verify_frozen(folder, expected, images.paths)
    entries = {}
    for stem in images.names:
        hq = to_float(load_image(images.paths[stem], None))[None]
        out = deg(hq, image_seed(seed, stem))
        files = {"lq": folder / "lq" / f"{stem}.png", "hq": folder / "hq" / f"{stem}.png"}
        write_image(files["lq"], out["lq"][0])
        write_image(files["hq"], out["hq"][0])
        entries[stem] = {
            "source": images.paths[stem].name, "source_sha256": sha256(images.paths[stem]),
            "seed": image_seed(seed, stem),
            "params": {k: _plain(v) for k, v in sorted(out["params"].items())},
            "lq_sha256": sha256(files["lq"]), "hq_sha256": sha256(files["hq"]),
        }
    manifest = {**expected, "skipped": images.report.skipped, "images": entries}
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"froze {len(entries)} degraded faces ({name}, seed {seed}) into {folder}")
    return manifest


# --- the test set -------------------------------------------------------------------------------------------


class RetouchPairs:
    """One FFHQR-layout split as compare's pairs: {lq: source, hq: target[, mask: the true mask]}, files
    matched by stem by `RetouchFolder` (bad or unmatched ones named and skipped)."""

    def __init__(self, root: Path) -> None:
        self.split = RetouchFolder(root, skip_bad=True)
        self.names, self.report = self.split.names, self.split.report

    def pair(self, name: str) -> dict[str, torch.Tensor]:
        item = self.split.pair(name)
        return {LQ: item[RAW], HQ: item[RETOUCHED], **({MASK: item[MASK]} if MASK in item else {})}

    def hq_sizes(self) -> dict[str, tuple[int, int]]:
        """name -> (width, height) of the targets, from the file headers."""
        from PIL import Image

        sizes = {}
        for name in self.names:
            with Image.open(self.split.targets[name]) as image:
                sizes[name] = image.size
        return sizes


@dataclasses.dataclass
class FaceSet:
    task: str  # restore | retouch
    pairs: PairedImageFolders | RetouchPairs  # names, pair(name) -> {lq, hq[, mask]}
    hq_sizes: dict[str, tuple[int, int]]  # name -> (width, height) of the reference
    problems: list[str]  # one line per skipped file
    frozen: Path | None  # the frozen protocol's folder

    @property
    def names(self) -> list[str]:
        return self.pairs.names

    def shapes(self) -> set[tuple[int, int]]:
        """(height, width) of the HQ images."""
        return {(h, w) for w, h in self.hq_sizes.values()}

    @property
    def has_masks(self) -> bool:
        return self.task == "retouch" and self.pairs.split.has_mask

    def hq_image(self, name: str) -> torch.Tensor:
        return self.pairs.pair(name)[HQ]


def set_task(test_set: DictConfig) -> str:
    """restore (hq_dir) or retouch (retouch_dir), with a clear error for neither or both."""
    given = [k for k in ("hq_dir", "retouch_dir") if test_set.get(k) is not None]
    if len(given) != 1:
        raise ConfigError("test_set: give hq_dir (faces to restore) or retouch_dir (an FFHQR-layout split, "
                          f"{{source,target[,mask]}}/), not {' and '.join(given) or 'neither'}")
    if given == ["retouch_dir"]:
        extra = [k for k in ("lq_dir", "degradation") if test_set.get(k) is not None]
        if extra:
            raise ConfigError(f"test_set.{extra[0]}: a restoration option; the retouching set "
                              "(test_set.retouch_dir) brings its own inputs (source/)")
    return "restore" if given == ["hq_dir"] else "retouch"


def load_face_set(cfg: DictConfig) -> FaceSet:
    ts = cfg.test_set
    frozen = None
    if set_task(ts) == "retouch":
        pairs = RetouchPairs(Path(ts.retouch_dir))
        for line in pairs.report.skipped:
            print(f"compare: skipped {line}", file=sys.stderr)
        return FaceSet("retouch", pairs, pairs.hq_sizes(), list(pairs.report.skipped), None)
    if ts.lq_dir is None:
        if ts.degradation is None:
            raise ConfigError("test_set: give lq_dir (a paired set) or degradation (gfpgan, gpen or dfdnet)")
        default = f"{Path(ts.hq_dir).name}-{ts.degradation}-seed{ts.seed}"
        frozen = Path(ts.frozen_dir or Path(cfg.paths.data_dir) / "compare" / default)
        manifest = freeze_protocol(ts.hq_dir, ts.degradation, check_seed(ts.seed), frozen)
        lq_dir, hq_dir, problems = frozen / "lq", frozen / "hq", list(manifest["skipped"])
    else:
        if ts.degradation is not None:
            raise ConfigError("test_set: lq_dir and degradation exclude each other (the LQ is given or made)")
        lq_dir, hq_dir, problems = Path(ts.lq_dir), Path(ts.hq_dir), []
    pairs = PairedImageFolders(lq_dir, hq_dir, skip_bad=True)
    problems += pairs.lq.report.skipped + pairs.hq.report.skipped
    for line in problems:
        print(f"compare: skipped {line}", file=sys.stderr)
    return FaceSet("restore", pairs, pairs.hq.sizes, problems, frozen)


# --- methods ------------------------------------------------------------------------------------------------


def method_files(methods) -> dict[str, str]:
    """`methods` (a list of files or a mapping name: file) → name: file; a list names each by its file stem
    (a run folder, or its checkpoints/*.ckpt, by the run's folder name), made unique."""
    if isinstance(methods, DictConfig | dict):
        named = {str(k): str(v) for k, v in methods.items()}
    elif isinstance(methods, ListConfig | list | tuple):
        named = {}
        for file in map(str, methods):
            path = Path(file)
            stem = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem or path.name
            name, n = stem, 1
            while name in named:
                n += 1
                name = f"{stem}_{n}"
            named[name] = file
    else:
        raise ConfigError(f"methods={methods}: expected a list of model files or a mapping name: file")
    if not named:
        raise ConfigError("methods: empty; give at least one model file")
    for name in set(named) & set(REFERENCE_ROWS):
        raise ConfigError(f"methods.{name}: the name of a reference row; name the method otherwise")
    return named


def _fit_contract(model, shapes: set[tuple[int, int]], option: str) -> str:
    """Check the set's sizes against the model's input contract (a ConfigError); → a note when the set's size
    is not the one the networks work at."""
    for h, w in sorted(shapes):
        if h == w:
            model.check_image_size(h, option)
        else:
            model.check_input(torch.empty(1, 3, h, w, device="meta"))
    native = model.native_size
    if native and shapes != {(native, native)}:
        return f"networks work at {native} px, the set is {', '.join(f'{w}x{h}' for h, w in sorted(shapes))}"
    return ""


# --- metrics ------------------------------------------------------------------------------------------------


class Scorer:
    """Every per-image metric of the task, the unavailable ones with the reason, and FID; for restoration the
    ground truth's face (box, landmarks) found once per image."""

    def __init__(self, cfg: DictConfig, device: str, task: str) -> None:
        m, self.device, self.task = cfg.metrics, device, task
        self.metrics, self.columns = METRICS[task], columns(task)
        self.unavailable: dict[str, str] = {}
        self.files: dict[str, Path] = {}
        self.quality = psnr_ssim_metrics().to(device)
        self.lpips = build_lpips(m.lpips_net, m.lpips_weights) if m.lpips_net else None
        if self.lpips is None:
            self.unavailable["lpips"] = "its ImageNet backbone file was not found; see facezoo-weights"
        else:
            self.files[f"LPIPS {m.lpips_net} backbone"] = self.lpips.weights_file
        self.soft_iou, self.fid = SoftIoU().to(device), None
        self.constant_mask = ConstantMaskSoftIoU()  # the true masks, seen once (the input row's pass)
        if task == "restore":
            self._face_metrics(cfg)

    def _face_metrics(self, cfg: DictConfig) -> None:
        m = cfg.metrics
        self.arcface = self._arcface(m.arcface_weights)
        self.detector = DlibDetector(**OmegaConf.to_container(cfg.detector), landmarks=m.landmarks)
        self.descriptor = FaceDescriptor(m.dlib_descriptor)
        self.lmd = LandmarkDistance(m.landmarks)
        self.files["dlib face descriptor"] = self.descriptor.path
        self.files["dlib 68-point predictor"] = self.lmd.path
        self.fid = self._fid(m.inception_weights)
        self.faces: dict[str, object] = {}  # image name -> the ground truth's Face (None: no face found)
        self.described: dict[str, np.ndarray] = {}  # image name -> the ground truth's face descriptor

    def _arcface(self, weights):
        path = resolve("arcface_resnet18", weights, required=False, option="metrics.arcface_weights")
        if path is None:
            self.unavailable["id_arcface"] = "arcface_resnet18.pth was not found; see facezoo-weights"
            return None
        from facezoo.metrics.identity import IdentitySimilarity
        from facezoo.models.components.arcface import ResNetArcFace, gfpgan_identity_input
        from facezoo.weights.state_dict import load_state_dict, match_state_dict

        net = ResNetArcFace()
        net.load_state_dict(match_state_dict(load_state_dict(path), net, "ArcFace ResNet-18"))
        self.files["ArcFace ResNet-18"] = path
        return IdentitySimilarity(net, gfpgan_identity_input).to(self.device)

    def _fid(self, weights):
        path = resolve(INCEPTION_FILE, weights, required=False, option="metrics.inception_weights")
        try:
            import torch_fidelity  # noqa: F401  (torchmetrics' FID Inception)
        except ImportError:
            self.unavailable["fid"] = "the torch-fidelity package is not installed"
            return None
        if path is None:
            self.unavailable["fid"] = f"{INCEPTION_FILE} was not found, and is never downloaded"
            return None
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.files["FID Inception-v3"] = path
        return FrechetInceptionDistance(feature_extractor_weights_path=str(path), reset_real_features=False,
                                        normalize=True).to(self.device)

    def ground_truth(self, name: str, hq: np.ndarray):
        if name not in self.faces:
            found = self.detector.detect(hq)
            largest = max(found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
            self.faces[name] = largest
        return self.faces[name]

    def score(self, name: str, image: torch.Tensor, hq: torch.Tensor, mask: torch.Tensor | None = None,
              true_mask: torch.Tensor | None = None) -> dict[str, float]:
        """Metrics of one (3, H, W) [-1, 1] image (on uint8 levels) against its ground truth; retouching: of
        its predicted (1, H, W) mask in [0, 1] against the true one (NaN where either is missing)."""
        pair = image[None].to(self.device), hq[None].to(self.device)
        row = {k: float(v) for k, v in self.quality(*pair).items()}
        self.quality.reset()
        if self.lpips is not None:
            row["lpips"] = float(self.lpips(*pair))
            self.lpips.reset()
        if self.task == "retouch":
            row["soft_iou"] = math.nan
            if mask is not None and true_mask is not None:
                row["soft_iou"] = float(self.soft_iou(*(m[None].to(self.device) for m in (mask, true_mask))))
                self.soft_iou.reset()
            return row
        if self.arcface is not None:
            row["id_arcface"] = 1.0 - float(self.arcface(*pair))
            self.arcface.reset()
        out_u8, hq_u8 = (to_uint8(x).permute(1, 2, 0).cpu().numpy() for x in (image, hq))
        face = self.ground_truth(name, hq_u8)
        row["id_dlib"] = self.identity_distance(name, out_u8, hq_u8, face) if face else math.nan
        row["lmd"] = self.lmd(out_u8, hq_u8, face.box) if face else math.nan
        return row

    def identity_distance(self, name: str, image: np.ndarray, hq: np.ndarray, face) -> float:
        """`FaceDescriptor.distance`, the ground truth's descriptor computed once for every method."""
        if name not in self.described:
            self.described[name] = self.descriptor.describe(hq, face.landmarks)
        return float(np.linalg.norm(self.descriptor.describe(image, face.landmarks) - self.described[name]))

    def update_fid(self, images: torch.Tensor, real: bool) -> None:
        if self.fid is not None:
            self.fid.update((images.to(self.device) + 1) / 2, real=real)

    def compute_fid(self) -> float | None:
        if self.fid is None:
            return None
        value = float(self.fid.compute())
        self.fid.reset()  # the HQ features stay (reset_real_features=False)
        return value


# --- running one method -------------------------------------------------------------------------------------


def _batches(test: FaceSet, size: int):
    """Consecutive names of one HQ size, at most `size` at a time, with their (lq, hq) float batches and the
    true masks in [0, 1] (None: the set has none)."""
    names = test.names
    start = 0
    while start < len(names):
        pairs = [test.pairs.pair(names[start])]
        end = start + 1
        while end < len(names) and end - start < size:
            nxt = test.pairs.pair(names[end])
            if nxt[HQ].shape != pairs[0][HQ].shape:
                break
            pairs.append(nxt)
            end += 1
        masks = torch.stack([p[MASK] for p in pairs]).float() / 255 if MASK in pairs[0] else None
        yield names[start:end], to_float(torch.stack([p[LQ] for p in pairs])), \
            to_float(torch.stack([p[HQ] for p in pairs])), masks
        start = end


def _as_saved(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An output as its PNG holds it: at the HQ size (bicubic, antialiased, when it differs), clamped to
    [-1, 1] and rounded to uint8 levels."""
    image = image.float().cpu()
    if image.shape[-2:] != size:
        image = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    return to_float(to_uint8(image.clamp(-1, 1)))


def _mask_at(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A predicted (B, 1, h, w) mask at the HQ size (bilinear when it differs), in [0, 1], not quantised."""
    mask = mask.float().cpu()
    if mask.shape[-2:] != size:
        mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return mask.clamp(0, 1)


def run_method(name: str, model, test: FaceSet, scorer: Scorer, cfg: DictConfig, out: Path, device: str,
               grid: dict) -> tuple[list[dict], dict]:
    """Restore the set with `model.restore` (None: the inputs themselves, the reference row), score every
    image (and its mask, when the method predicts one), time `restore` and its peak memory; → (per-image rows,
    cost and whether it predicts masks); the `grid` faces' outputs (and masks) go into `grid`."""
    rows, seconds, peak = [], 0.0, 0.0
    first, predicts_mask = True, model is not None
    for names, lq, hq, true_masks in _batches(test, cfg.batch_size):
        size = tuple(hq.shape[-2:])
        if model is None:
            outputs, masks = lq, None
            if true_masks is not None:
                scorer.constant_mask.update(true_masks)
        else:
            lq_dev = lq.to(device)
            if first:  # warm-up, not timed
                model.restore(lq_dev)
                first = False
            with PeakMemory(torch.device(device)) as memory:
                _sync(device)
                start = time.perf_counter()
                restored = model.restore(lq_dev)
                _sync(device)
                seconds += time.perf_counter() - start
            peak = max(peak, memory.mb)
            outputs = restored["image"]
            masks = _mask_at(restored[MASK], size) if MASK in restored else None
            predicts_mask &= masks is not None
        outputs = _as_saved(outputs, size)
        scorer.update_fid(outputs, real=False)
        for i, (stem, image, target) in enumerate(zip(names, outputs, hq, strict=True)):
            mask, true_mask = (None if m is None else m[i] for m in (masks, true_masks))
            rows.append({"method": name, "image": stem, **scorer.score(stem, image, target, mask, true_mask)})
            if model is not None and cfg.save_outputs:
                write_image(out / "outputs" / name / f"{stem}.png", image, durable=False)
                if mask is not None:
                    write_image(out / "outputs" / name / "mask" / f"{stem}.png", mask, durable=False)
            if stem in grid:
                grid[stem][name] = image
                if mask is not None:
                    grid[stem][f"{name}/{MASK}"] = mask
    cost = {} if model is None else {"sec_per_face": seconds / len(rows), "peak_mem_mb": peak,
                                     "predicts_mask": predicts_mask}
    return rows, cost


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r and not math.isnan(r[key])]
    return float(np.mean(values)) if values else math.nan


# --- tables, card, grid, plots ------------------------------------------------------------------------------


def _cell(row: dict, key: str, scorer: Scorer, digits: int | None = 4) -> str:
    """A table cell: the value (`digits` significant digits; None: all), or why there is none."""
    if row.get("status", "ok") != "ok":
        return "failed" if key in scorer.columns else ""
    if row["method"] == CONSTANT_MASK_ROW and key in scorer.columns and key != "soft_iou":
        return ""  # a reference for the mask only
    if key in scorer.unavailable:
        return "unavailable"
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else repr(value) if digits is None else f"{value:.{digits}g}"
    return str(value)


def write_tables(out: Path, results: list[dict], per_image: list[dict], scorer: Scorer,
                 test: FaceSet) -> None:
    counts = ["images", "faces"] if test.task == "restore" else ["images"]
    columns = ["method", "status", *counts, *scorer.columns, "note"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(r, c, scorer, None) if c in scorer.columns else r.get(c, "") for c in columns]
                     for r in results)
    write_text(out / "results.csv", buffer.getvalue())

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "image", *scorer.metrics])
    writer.writerows([r["method"], r["image"], *(_cell(r, k, scorer, None) for k in scorer.metrics)]
                     for r in per_image)
    write_text(out / "per_image.csv", buffer.getvalue())

    arrows = {c: (" ↓" if c in LOWER_IS_BETTER else " ↑") for c in scorer.columns}
    lines = ["# facezoo-compare", "",
             f"{len(test.names)} faces; protocol: [protocol.md](protocol.md); per image: per_image.csv.", "",
             "| " + " | ".join(f"{c}{arrows.get(c, '')}" for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for r in results:
        cells = [_cell(r, c, scorer) if c in scorer.columns else str(r.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if scorer.unavailable:
        lines += ["", "Unavailable: " + "; ".join(f"{k}: {v}" for k, v in scorer.unavailable.items()) + "."]
    if test.problems:
        lines += ["", "Skipped files:", *(f"- {p}" for p in test.problems)]
    given, wanted = ("LQ", "HQ") if test.task == "restore" else ("input (source)", "target")
    lines += ["", "![grid](grid.png)", "", f"grid columns: {given} | {' | '.join(_ran(results))} | {wanted}"]
    mask_columns = (["true mask"] if test.has_masks else []) + _ran(results, masks=True)
    if _ran(results, masks=True):
        lines += ["", "![masks](masks.png)", "", f"mask grid columns: {' | '.join(mask_columns)}"]
    lines += ["", "![metrics](plots/metrics.png) ![quality vs speed](plots/quality_vs_speed.png)"]
    write_text(out / "results.md", "\n".join(lines) + "\n")

    def plain(value):
        return None if isinstance(value, float) and math.isnan(value) else value

    summary = {"task": test.task, "results": [{k: plain(v) for k, v in r.items()} for r in results],
               "unavailable": scorer.unavailable, "skipped_files": test.problems, "images": len(test.names)}
    write_text(out / "results.json", json.dumps(summary, indent=1) + "\n")


def _test_set_lines(cfg: DictConfig, test: FaceSet) -> list[str]:
    ts, shapes = cfg.test_set, ", ".join(f"{w}x{h}" for h, w in sorted(test.shapes()))
    if test.task == "retouch":
        masks = ("mask/ (the true imperfection masks, 8-bit soft masks read as value / 255)" if test.has_masks
                 else "no mask/ folder (so no soft_iou)")
        return [
            f"- Retouching split `{ts.retouch_dir}` (FFHQR layout): source/ (the raw face, every method's "
            f"input), target/ (the retouched reference), {masks}, matched by file stem.",
            f"- {len(test.names)} faces at {shapes} px; {len(test.problems)} files skipped (see results.md).",
        ]
    if test.frozen is not None:
        source = (
            f"- HQ faces from `{ts.hq_dir}` degraded by the `{ts.degradation}` protocol "
            f"(conf/datamodule/degradation/{ts.degradation}.yaml, `BlindDegradation`), seed {ts.seed}; each "
            "image with a seed of its own (from the sha256 of `<seed>:<file stem>`), frozen once to "
            f"`{test.frozen}` (lq/, hq/ as PNG). Its `{MANIFEST}` holds every parameter drawn per image and "
            "the sha256 of every source, LQ and HQ file, verified before a run uses the set. The HQ "
            "reference is the degradation's HQ output: the source's pixels, but where the protocol changes "
            "the HQ (GPEN: gray with p 0.2; DFDNet: a colour shift with p 0.3)."
        )
    else:
        source = f"- Paired folders: LQ `{ts.lq_dir}`, HQ `{ts.hq_dir}`, matched by file stem."
    return [
        source,
        f"- {len(test.names)} faces at {shapes} px; {len(test.problems)} files skipped (see results.md).",
        "- An LQ image of another size than its HQ image is resized to it (OpenCV INTER_AREA to shrink, "
        "bicubic to enlarge) before any method sees it.",
    ]


def _metric_lines(cfg: DictConfig, scorer: Scorer) -> list[str]:
    def unless_unavailable(key: str, line: str) -> str:
        return f"- {key}: unavailable ({scorer.unavailable[key]})." if key in scorer.unavailable else line

    reference = "HQ image" if scorer.task == "restore" else "target"
    common = [
        f"- Colour space RGB, 8 bits. Every output is clamped to [-1, 1], resized to its {reference}'s size "
        "when it differs (bicubic, antialiased) and rounded to uint8 levels, as its PNG in outputs/ holds "
        "it; every metric reads these values. No crop: the metrics see the whole image.",
        f"- psnr: per image over all RGB channels and pixels, data_range {DATA_RANGE} (= range 1 on [0, 1] "
        "images), averaged over images (facezoo.metrics.image_quality, as facezoo-eval).",
        "- ssim: torchmetrics' Gaussian SSIM (11x11, sigma 1.5) on RGB, the same data range, per image, then "
        "averaged; papers reporting SSIM on the Y channel give other numbers.",
        unless_unavailable("lpips", f"- lpips: net `{cfg.metrics.lpips_net}` (lpips 0.1.4's linear heads, "
                           "the ImageNet backbone file below), images in [-1, 1]."),
    ]
    cost = (f"- Cost: `restore()` at batch size {cfg.batch_size} on {_device_name(cfg)}, after one "
            "untimed warm-up batch; sec_per_face = timed seconds / faces. peak_mem_mb: on CUDA the "
            "allocator's peak during restore(); on a CPU the process's resident set size sampled during "
            "restore() (it includes the interpreter, the metric networks and what earlier methods left).")
    if scorer.task == "retouch":
        return [*common,
                "- soft_iou: sum(min(p, t)) / sum(max(p, t)) over the pixels of the method's predicted mask "
                "p (its `restore()` output `mask`, in [0, 1], resized bilinearly to the target's size when "
                "it differs, not quantised) and the true mask t, per image (1 when both are empty), averaged "
                "(facezoo.metrics.soft_iou, as facezoo-eval); n/a for a method without a mask.",
                f"- `{INPUT_ROW}`: the source itself as the answer (facezoo-eval's psnr_input / ssim_input). "
                f"`{CONSTANT_MASK_ROW}`: the best constant mask c (the same value at every pixel of every "
                "image, searched on 101 values in [0, 1]; facezoo-eval's soft_iou_const): a mask must beat "
                "it to say anything.",
                cost]
    detector = OmegaConf.to_container(cfg.detector)
    return [
        *common,
        "- The HQ face: the largest face dlib's detector finds on the HQ image "
        f"({', '.join(f'{k}={v}' for k, v in detector.items())}). Images without one have no id_dlib / lmd "
        "(n/a); `faces` counts those with one, and the id_dlib / lmd means are over them.",
        "- id_dlib: Euclidean distance of dlib's 128-d ResNet face descriptors of the output and the HQ, "
        "both taken at the 68 landmarks found on the HQ image (a 150 px chip, padding 0.25), so an output "
        "on which no face would be detected is never dropped. dlib calls under 0.6 the same person.",
        unless_unavailable("id_arcface", "- id_arcface: 1 - cosine similarity of GFP-GAN's ArcFace "
                           "ResNet-18 embeddings (its gray 128 px input)."),
        "- lmd: the mean Euclidean distance of dlib's 68 landmarks predicted on the output and on the HQ, "
        "both in the HQ face's detection box, divided by the HQ's inter-ocular distance (between the eye "
        "centres, the means of points 36-41 and 42-47): a fraction of the eye distance.",
        unless_unavailable("fid", "- fid: Frechet Inception distance of all outputs to all HQ images "
                           "(torchmetrics with torch-fidelity's Inception-v3 file below, 2048-d features)."),
        cost,
    ]


def write_card(out: Path, cfg: DictConfig, test: FaceSet, scorer: Scorer, results: list[dict]) -> None:
    """protocol.md: every choice behind the numbers, and the checksums of the files that made them."""
    lines = ["# Protocol", "", "## Test set", "", *_test_set_lines(cfg, test), "",
             "## Images and metrics", "", *_metric_lines(cfg, scorer), "",
             "## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {what}: `{path}` | {sha256(path)} |" for what, path in scorer.files.items()]
    lines += [f"| method {r['method']}: `{r['file']}` | {r['sha256']} |" for r in results if r.get("sha256")]
    write_text(out / "protocol.md", "\n".join(lines) + "\n")


def _device_name(cfg: DictConfig) -> str:
    device = device_option(str(cfg.device))
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"the CPU ({torch.get_num_threads()} threads)"


def _ran(results: list[dict], masks: bool = False) -> list[str]:
    """The methods that ran (no reference rows); `masks`: those that predicted masks."""
    return [r["method"] for r in results if r["status"] == "ok" and r["method"] not in REFERENCE_ROWS
            and (r.get("predicts_mask") or not masks)]


def write_grid(out: Path, grid: dict, results: list[dict], lq: dict) -> np.ndarray | None:
    """grid.png (rows: faces; columns: input | methods | reference) and, when methods predict masks,
    masks.png (columns: the true mask | each method's mask, white = retouched)."""
    if not grid:
        return None
    rows = list(grid)
    columns = [torch.stack([lq[n] for n in rows])]
    columns += [torch.stack([grid[n][m] for n in rows]) for m in _ran(results)]
    columns.append(torch.stack([grid[n]["hq"] for n in rows]))
    image = make_grid(columns)
    write_image(out / "grid.png", image)
    masked = [f"{m}/{MASK}" for m in _ran(results, masks=True)]
    if masked:
        keys = ([MASK] if MASK in grid[rows[0]] else []) + masked
        write_image(out / "masks.png", make_grid([
            torch.stack([grid[n][k] for n in rows]).expand(-1, 3, -1, -1) * 2 - 1 for k in keys]))
    return to_uint8(image).permute(1, 2, 0).numpy()


def write_plots(out: Path, results: list[dict], quality: str, scorer: Scorer) -> None:
    """plots/metrics.png (a bar panel per metric, the methods that ran) and plots/quality_vs_speed.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok"]
    panels = [k for k in scorer.columns
              if any(isinstance(r.get(k), float) and not math.isnan(r[k]) for r in ok)]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(0.6 + (0.5 + 0.45 * len(ok)) * len(panels), 3),
                                 squeeze=False)
        for ax, key in zip(axes[0], panels, strict=True):
            shown = [r for r in ok if isinstance(r.get(key), float) and not math.isnan(r[key])]
            ax.bar([r["method"] for r in shown], [r[key] for r in shown], color="tab:blue")
            ax.set_title(f"{key} {'↓' if key in LOWER_IS_BETTER else '↑'}", fontsize=9)
            ax.tick_params(axis="x", rotation=60, labelsize=7)
            ax.tick_params(axis="y", labelsize=7)
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.3, wspace=0.5)
        fig.savefig(out / "plots" / "metrics.png", dpi=100)
        plt.close(fig)
    timed = [r for r in ok if "sec_per_face" in r and isinstance(r.get(quality), float)]
    if timed:
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.scatter([r["sec_per_face"] for r in timed], [r[quality] for r in timed])
        for r in timed:
            ax.annotate(r["method"], (r["sec_per_face"], r[quality]), fontsize=8)
        ax.set_xscale("log")
        ax.set(xlabel="seconds per face", ylabel=quality, title=f"{quality} vs speed")
        fig.subplots_adjust(left=0.16, bottom=0.14)
        fig.savefig(out / "plots" / "quality_vs_speed.png", dpi=100)
        plt.close(fig)


def log_wandb(cfg: DictConfig, results: list[dict], scorer: Scorer, grid: np.ndarray | None) -> None:
    """The results table, the grid (and masks.png) into one wandb run (`logger=wandb`)."""
    node = cfg.logger.get("wandb") if cfg.get("logger") else None
    if node is None:
        raise ConfigError(f"logger={list(cfg.logger)}: facezoo-compare logs to wandb only (logger=wandb)")
    node = node.copy()
    with open_dict(node):  # the train config's interpolations (model name, gamma, tags) mean nothing here
        node.update(name=f"compare-{Path(cfg.paths.output_dir).name}", group="compare", tags=["compare"])
    logger = instantiate(node, "logger.wandb")
    columns = ["method", "status", *scorer.columns]
    data = [[r["method"], r["status"], *(_cell(r, c, scorer) for c in scorer.columns)] for r in results]
    logger.log_table("compare/results", columns=columns, data=data)
    if grid is not None:
        logger.log_image("compare/grid", [grid])
    masks = Path(cfg.paths.output_dir) / "masks.png"
    if masks.is_file():
        logger.log_image("compare/masks", [read_rgb_uint8(masks)])
    finish_loggers([logger])


# --- the command --------------------------------------------------------------------------------------------


def compare(cfg: DictConfig) -> list[dict]:
    """Run every method on the test set (module docstring); → the results rows (one per method, and `lq`)."""
    torch.manual_seed(check_seed(cfg.seed))
    if OmegaConf.is_missing(cfg, "methods"):
        raise ConfigError("methods is missing: give the model files to compare")
    set_task(cfg.test_set)
    device = device_option(str(cfg.device))
    if isinstance(cfg.batch_size, bool) or not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: expected a positive number of faces")
    files = method_files(cfg.methods)
    out = Path(cfg.paths.output_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    test = load_face_set(cfg)
    scorer = Scorer(cfg, device, test.task)
    grid = {n: {} for n in test.names[: cfg.grid_faces]}
    results, per_image = [], []

    given = INPUT_ROWS[test.task]
    rows, _ = run_method(given, None, test, scorer, cfg, out, device, grid)
    lq_grid = {n: grid[n].pop(given) for n in grid}
    for stem in grid:
        pair = test.pairs.pair(stem)
        grid[stem]["hq"] = to_float(pair[HQ])
        if MASK in pair:
            grid[stem][MASK] = pair[MASK].float() / 255
    if scorer.fid is not None:
        scorer.update_fid(torch.stack([to_float(test.hq_image(n)) for n in test.names]), real=True)
    results.append(_summary(given, "", rows, {}, scorer, ""))
    per_image += rows
    if test.has_masks:
        results.append(constant_mask_row(scorer, len(test.names)))
    for name, file in files.items():
        try:
            model_file = open_model_file(file, option=f"methods.{name}")
            model = load_model(model_file, device)
            note = _fit_contract(model, test.shapes(), f"methods.{name}")
            rows, cost = run_method(name, model, test, scorer, cfg, out, device, grid)
        except Exception as err:  # any failure of one method is named; the others go on
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if not isinstance(err, FacezooError):
                line = f"{type(err).__name__}: {line}"
                log.debug("method %s failed", name, exc_info=True)
            print(f"compare: method {name} ({file}) failed: {line}", file=sys.stderr)
            results.append({"method": name, "file": file, "status": "failed", "note": line})
            for stem in grid:
                grid[stem].pop(name, None)
            continue
        del model  # freed before the next method
        per_image += rows
        results.append({**_summary(name, file, rows, cost, scorer, note), "sha256": sha256(model_file.path)})
        shown = ("psnr", "ssim", *(("soft_iou",) if results[-1]["predicts_mask"] else ()), *COST)
        print(f"compare: {name}: " + ", ".join(f"{k} {results[-1][k]:.4g}" for k in shown))

    write_tables(out, results, per_image, scorer, test)
    write_card(out, cfg, test, scorer, results)
    grid_image = write_grid(out, grid, results, lq_grid)
    write_plots(out, results, cfg.plot_quality, scorer)
    if cfg.get("logger"):
        log_wandb(cfg, results, scorer, grid_image)
    print(f"results: {out / 'results.md'}")
    return results


def constant_mask_row(scorer: Scorer, images: int) -> dict:
    """The `constant_mask` reference: the best constant mask's mean Soft-IoU over the set's true masks."""
    metric = scorer.constant_mask
    return {"method": CONSTANT_MASK_ROW, "file": "", "status": "ok", "images": images,
            "soft_iou": float(metric.compute()), "note": f"c = {metric.best_constant():.2f}"}


def _summary(name: str, file: str, rows: list[dict], cost: dict, scorer: Scorer, note: str) -> dict:
    row = {"method": name, "file": file, "status": "ok", "images": len(rows)}
    if scorer.task == "restore":
        row["faces"] = sum(not math.isnan(r["id_dlib"]) for r in rows)
    row.update({k: _mean(rows, k) for k in scorer.metrics if k not in scorer.unavailable})
    if scorer.fid is not None:
        row["fid"] = scorer.compute_fid()
    return {**row, **cost, "note": note}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compare")
def main(cfg: DictConfig) -> None:
    results = run_cli(compare, cfg)
    failed = [r["method"] for r in results if r["status"] != "ok"]
    if failed:
        error_line(f"{len(failed)} of {len(results) - 1} methods failed: {', '.join(failed)} (results.md)")
        sys.exit(1)


if __name__ == "__main__":
    main()
