"""facezoo-compare (src/compare.py): one in-process run over tiny random models (built from the tiny test
configs, random weights on purpose) on three astronaut faces (scikit-image, public domain) at 128 px degraded
by the frozen GFP-GAN protocol, read by several tests; plus the frozen protocol's byte identity, a paired set
with bad files, the command line, and the retouching mode on a tiny FFHQR-layout split."""

import csv
import json
import logging
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from PIL import Image

from facezoo.checkpoints import build_model, config_entries, load_model, save_checkpoint
from facezoo.compare import METRICS, columns, compare, freeze_protocol, load_face_set, main, set_task
from facezoo.datamodules.folders import RetouchFolder
from facezoo.datamodules.synthetic.writers import write_ffhqr
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import to_float, write_image
from helpers import ROOT, TINY

SIZE = 128
FACES = 2


def _save_model(file: Path, *overrides: str) -> Path:
    """A tiny model with random weights (the tiny test config and `overrides`) saved as a checkpoint."""
    cfg = compose_config(overrides=[*TINY, *overrides], output_dir=file.parent / "run")
    with open_dict(cfg):
        del cfg["hydra"]
    torch.manual_seed(0)
    save_checkpoint({"state_dict": build_model(cfg.model).state_dict(), **config_entries(cfg)}, file)
    return file


def _save_models(root: Path) -> dict[str, Path]:
    """Tiny random Pix2Pix and GPEN checkpoints, a Pix2Pix whose input contract (sides divisible by 256)
    does not fit 128 px faces, and a file that is no checkpoint."""
    files = {}
    for model, variants in (("baseline", {"baseline": [], "deep": ["model.generator.depth=8"]}),
                            ("gpen", {"gpen": []})):
        for name, extra in variants.items():
            files[name] = _save_model(root / f"{name}.ckpt", f"model={model}", "datamodule=synthetic_restore",
                                      *extra)
    files["broken"] = root / "broken.ckpt"
    files["broken"].write_bytes(b"not a checkpoint")
    return files


def _faces(folder: Path) -> Path:
    """FACES astronaut heads at SIZE px, each shifted a little (dlib finds each face)."""
    head = skimage.data.astronaut()[20:250, 110:330]
    for i in range(FACES):
        face = cv2.resize(np.roll(head, 6 * i, axis=1), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        write_image(folder / f"face{i}.png", face)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The compare command run once: (its output folder, its results, the frozen set's folder, hq folder)."""
    root = tmp_path_factory.mktemp("compare")
    files = _save_models(root)
    hq = _faces(root / "hq")
    methods = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    cfg = compose_config("compare", [
        f"methods={methods}", f"test_set.hq_dir={hq}", "test_set.degradation=gfpgan", "device=cpu",
        f"test_set.frozen_dir={root / 'frozen'}",
    ], output_dir=root / "out")
    return root / "out", compare(cfg), root / "frozen", hq


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_table_has_every_method_and_metric(run):
    out, results, _, _ = run
    table = {row["method"]: row for row in _csv(out / "results.csv")}
    assert list(table) == ["lq", "baseline", "deep", "gpen", "broken"]
    for row in table.values():
        assert set(columns("restore")) <= set(row)
    for name in ("lq", "baseline", "gpen"):
        row = table[name]
        assert row["status"] == "ok" and row["images"] == str(FACES) and row["faces"] == str(FACES)
        for key in ("psnr", "ssim", "id_dlib", "lmd"):
            assert np.isfinite(float(row[key])), (name, key)
        for key in ("lpips", "id_arcface", "fid"):  # no backbone files here: marked, never computed randomly
            assert row[key] == "unavailable"
    assert float(table["baseline"]["sec_per_face"]) > 0 and float(table["gpen"]["peak_mem_mb"]) > 0
    assert table["lq"]["sec_per_face"] == ""
    per_image = _csv(out / "per_image.csv")
    assert {(r["method"], r["image"]) for r in per_image} == {
        (m, f"face{i}") for m in ("lq", "baseline", "gpen") for i in range(FACES)}
    assert set(METRICS["restore"]) <= set(per_image[0])
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["unavailable"]) == {"lpips", "id_arcface", "fid"}
    assert "| baseline | ok |" in (out / "results.md").read_text()


def test_a_failing_method_is_named_and_the_others_run(run):
    out, results, _, _ = run
    status = {r["method"]: r for r in results}
    assert "divisible by 256" in status["deep"]["note"] and status["deep"]["status"] == "failed"
    assert "broken.ckpt" in status["broken"]["note"] and status["broken"]["status"] == "failed"
    assert status["gpen"]["status"] == "ok"  # it came after a failed method
    written = sorted(p.name for p in (out / "outputs" / "gpen").iterdir())
    assert written == [f"face{i}.png" for i in range(FACES)]
    assert not (out / "outputs" / "deep").exists()
    # the grid: FACES rows, columns LQ | baseline | gpen | HQ (each cell SIZE + 2 * 2 px of padding)
    assert Image.open(out / "grid.png").size == (4 * (SIZE + 4), FACES * (SIZE + 4))
    assert {p.name for p in (out / "plots").iterdir()} == {"metrics.png", "quality_vs_speed.png"}


def test_identity_and_lmd_of_the_inputs_are_worse_than_nothing_changed(run):
    """The `lq` row measures the degraded inputs: identity distance and LMD above zero (a face against
    itself scores 0: tests/metrics)."""
    _, results, _, _ = run
    lq = next(r for r in results if r["method"] == "lq")
    assert lq["id_dlib"] > 0 and lq["lmd"] > 0 and lq["psnr"] < 40


def test_the_protocol_card_states_the_choices_and_checksums(run):
    out, _, frozen, _ = run
    card = (out / "protocol.md").read_text()
    for phrase in ("data_range (-1.0, 1.0)", "inter-ocular distance", "HQ image", "bicubic", "manifest.json",
                   "lpips: unavailable", "fid: unavailable", "shape_predictor_68_face_landmarks.dat"):
        assert phrase in card, phrase
    assert card.count("| method ") == 2  # the two methods that ran, with their files' sha256


def test_the_frozen_protocol_is_byte_identical_and_verified(run, tmp_path):
    _, _, frozen, hq = run
    manifest = json.loads((frozen / "manifest.json").read_text())
    assert manifest["degradation"] == "gfpgan" and manifest["config"]["jpeg_range"] == [60, 100]
    entry = manifest["images"]["face0"]
    assert {"scale", "quality", "sigma_x", "noise_sigma"} <= set(entry["params"])
    again = freeze_protocol(hq, "gfpgan", 0, tmp_path / "again")
    files = sorted(p.relative_to(frozen) for p in frozen.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*")
                           if p.is_file())
    for name in files:
        assert (frozen / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert freeze_protocol(hq, "gfpgan", 0, tmp_path / "again") == again  # re-used after verification
    other_seed = freeze_protocol(hq, "gfpgan", 1, tmp_path / "seed1")
    assert other_seed["images"]["face0"]["lq_sha256"] != entry["lq_sha256"]
    write_image(tmp_path / "again" / "lq" / "face1.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(DataError, match="face1.png: missing or changed"):
        freeze_protocol(hq, "gfpgan", 0, tmp_path / "again")


def test_a_paired_set_names_its_bad_files_and_keeps_the_rest(tmp_path, capsys):
    lq, hq = _faces(tmp_path / "lq"), _faces(tmp_path / "hq")
    (lq / "face1.png").write_bytes(b"not an image")
    write_image(hq / "lonely.png", np.zeros((8, 8, 3), np.uint8))
    cfg = OmegaConf.create({"test_set": {"lq_dir": str(lq), "hq_dir": str(hq), "degradation": None},
                            "paths": {"data_dir": str(tmp_path)}})
    found = load_face_set(cfg)
    assert found.names == ["face0"]
    assert len(found.problems) == 3  # the unreadable LQ, so its HQ has no partner, and the lonely HQ
    err = capsys.readouterr().err
    assert "lq/face1.png: not a readable image" in err and "hq/face1.png: no partner" in err
    assert "lonely.png: no partner" in err


def test_the_command_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    """`facezoo-compare` (its `main`, in-process: the console script's function) on a missing HQ folder."""
    missing = tmp_path / "none"
    monkeypatch.setattr(sys, "argv", ["facezoo-compare", "methods=[x.ckpt]", f"test_set.hq_dir={missing}",
                                      "test_set.degradation=gfpgan", f"hydra.run.dir={tmp_path / 'out'}"])
    root, handlers, level = logging.getLogger(), logging.getLogger().handlers[:], logging.getLogger().level
    try:
        with pytest.raises(SystemExit) as exit:
            main()
    finally:  # what Hydra's app set up stays out of later tests
        GlobalHydra.instance().clear()
        root.handlers[:], root.level = handlers, level
    assert exit.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"facezoo: error: {missing}: folder not found (expected a folder of images)"
    assert 'facezoo-compare = "facezoo.compare:main"' in (ROOT / "pyproject.toml").read_text()


class _RecordingLogger:
    """Stands in for the wandb logger (an offline wandb run costs ~10 s; tests/test_train.py writes one):
    records what facezoo-compare logs and how the logger was configured."""

    def __init__(self, **config) -> None:
        self.config, self.tables, self.images, self.finalized = config, {}, {}, False

    def log_table(self, key, columns, data):
        self.tables[key] = (columns, data)

    def log_image(self, key, images):
        self.images[key] = images

    def finalize(self, status):
        self.finalized = status == "success"


def test_retouching_methods_are_compared_on_an_ffhqr_split(tmp_path, monkeypatch):
    """A tiny random RetouchFormer and Pix2Pix on a 3-face FFHQR-layout split: the `input` and
    `constant_mask` references are what the files give, RetouchFormer's Soft-IoU is that of its own
    restore() masks, and the restoration model (no mask) has none; with logger=wandb the table, the grid
    and the masks go to one run of the group `compare`."""
    logged = []

    def instantiate(node, option):
        assert option == "logger.wandb" and node["_target_"].endswith("wandb_logger")
        logged.append(_RecordingLogger(**{k: v for k, v in node.items() if k != "_target_"}))
        return logged[-1]

    monkeypatch.setattr("facezoo.compare.instantiate", instantiate)
    split = write_ffhqr(tmp_path / "ffhqr", {"test": 3}, size=64) / "test"
    files = {"retouchformer": _save_model(tmp_path / "rf.ckpt", "model=retouchformer",
                                          "datamodule=synthetic_retouch"),
             "baseline": _save_model(tmp_path / "pix2pix.ckpt", "model=baseline",
                                     "datamodule=synthetic_restore")}
    methods = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    out = tmp_path / "out"
    cfg = compose_config("compare", [f"methods={methods}", f"test_set.retouch_dir={split}", "device=cpu",
                                     "logger=wandb"], output_dir=out)
    results = {r["method"]: r for r in compare(cfg)}
    assert list(results) == ["input", "constant_mask", "retouchformer", "baseline"]

    folder = RetouchFolder(split)
    source, target = (to_float(torch.stack([getattr(folder, k)(n) for n in folder.names]))
                      for k in ("raw", "retouched"))
    masks = torch.stack([folder.mask(n) for n in folder.names]).double() / 255
    psnr = 10 * torch.log10(4 / (source - target).square().mean((1, 2, 3)))  # data range 2 on [-1, 1]
    assert results["input"]["psnr"] == pytest.approx(float(psnr.mean()), abs=1e-4)

    def soft_iou(pred):  # per image, then the mean
        inter, union = (f(pred, masks).sum((1, 2, 3)) for f in (torch.minimum, torch.maximum))
        return float((inter / union).mean())

    best = max(soft_iou(torch.full_like(masks, c)) for c in torch.linspace(0, 1, 101).tolist())
    assert results["constant_mask"]["soft_iou"] == pytest.approx(best, abs=1e-6)
    predicted = load_model(files["retouchformer"], "cpu").restore(source)["mask"].double()
    assert results["retouchformer"]["predicts_mask"]
    assert results["retouchformer"]["soft_iou"] == pytest.approx(soft_iou(predicted), abs=1e-5)
    assert not results["baseline"]["predicts_mask"] and math.isnan(results["baseline"]["soft_iou"])

    table = {row["method"]: row for row in _csv(out / "results.csv")}
    assert set(columns("retouch")) <= set(table["retouchformer"]) and "id_dlib" not in table["input"]
    assert table["baseline"]["soft_iou"] == "n/a" and table["constant_mask"]["psnr"] == ""
    assert len(list((out / "outputs" / "retouchformer" / "mask").iterdir())) == 3
    assert Image.open(out / "masks.png").size == (2 * (64 + 4), 3 * (64 + 4))  # true mask | retouchformer
    card = (out / "protocol.md").read_text()
    assert "FFHQR layout" in card and "soft_iou_const" in card and "inter-ocular" not in card
    (wandb,) = logged
    assert wandb.config["group"] == "compare" and wandb.finalized
    header, data = wandb.tables["compare/results"]
    assert [row[0] for row in data] == list(results) and header[2:] == list(columns("retouch"))
    grid, masks = (wandb.images[f"compare/{k}"][0] for k in ("grid", "masks"))
    assert grid.shape == (3 * (64 + 4), 4 * (64 + 4), 3) and masks.shape == (3 * (64 + 4), 2 * (64 + 4), 3)
    with pytest.raises(ConfigError, match="not hq_dir and retouch_dir"):
        set_task(OmegaConf.create({"hq_dir": "a", "retouch_dir": "b"}))
