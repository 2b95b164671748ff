"""Bad input at the command line: every case ends with its exit code and one line on stderr that names the
file or option and what was expected, never a traceback, and no file that already existed changes (the
folders every case reads are hashed before and after). All commands run in ONE Python process
(`run_modules`), each with its own arguments, working folder and stderr.

Faults during a run (signals, full disks, concurrent runs) are tests/test_faults.py; bad data files in detail
are tests/datamodules/test_folders.py.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import QUIET, TINY, hostile_target, run_modules

# name -> (exit code, what the last stderr line says; `{tmp}` is the case's folder)
EXPECTED = {
    "gamma": (2, "split.gamma=1.5: expected the paired ratio as a number with 0 < gamma <= 1"),
    "missing_data": (2, "none/FFHQR: data folder not found"),
    "corrupt_image": (2, "train/source/b.png: not a readable image"),
    "truncated_jpeg": (2, "train/source/b.jpg: not a readable image"),
    "corrupt_test_image": (2, "test/target/c.png: not a readable image"),
    "unpaired_image": (2, "train/source/b.png: no partner"),
    "seed": (2, "seed=abc: expected an integer in [0, 2**32)"),
    "num_workers": (2, "datamodule.num_workers=-1: expected"),
    "image_size_zero": (2, "datamodule.image_size=0: expected a positive number of pixels, or null"),
    "image_size_negative": (2, "datamodule.image_size=-8: expected a positive number of pixels, or null"),
    "image_size_multiple": (2, "image_size=40: RetouchFormer expected sides divisible by 16, got 40x40"),
    "negative_lr": (2, "model.optimizers.generator: Invalid learning rate: -0.1"),
    "too_few_samples": (2, "datamodule.batch_size=5000: 1000 training samples per epoch do not fill one"),
    "resume_corrupt": (2, "{tmp}/truncated.ckpt: not a readable weight file"),
    "resume_missing": (2, "ckpt_path={tmp}/nothing.ckpt: no checkpoint there"),
    "eval_no_ckpt_path": (2, "ckpt_path is missing: give the run folder or the checkpoint file to evaluate"),
    "eval_corrupt": (2, "{tmp}/truncated.ckpt: not a readable weight file"),
    "eval_empty_run": (2, "ckpt_path={tmp}/empty_run: no checkpoints/best.ckpt or last.ckpt in this folder"),
    "eval_crafted": (2, "{tmp}/crafted.ckpt: model.generator: refused to build _target_ 'pathlib.Path.wri"),
    "import_unknown": (2, "{tmp}/other.pth: no known generator; facezoo reads facezoo checkpoints"),
}


def _ffhqr(root: Path, damage: str) -> Path:
    """A 4-identity FFHQR-layout folder with one damaged file."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for name in ("a", "b", "c", "d"):
            for sub in ("source", "target"):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / sub / f"{name}.png")
    if damage == "corrupt_image":
        (root / "train" / "source" / "b.png").write_bytes(b"not an image at all")
    elif damage == "corrupt_test_image":
        (root / "test" / "target" / "c.png").write_bytes(b"not an image at all")
    elif damage == "truncated_jpeg":
        (root / "train" / "source" / "b.png").unlink()
        jpeg = root / "train" / "source" / "b.jpg"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg)
        jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    elif damage == "unpaired_image":
        (root / "train" / "target" / "b.png").unlink()
    return root


def _hashes(*folders: Path) -> dict[Path, str]:
    """Every file under `folders` except the new run folders (`logs/`) → its sha256."""
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders for p in sorted(folder.rglob("*"))
        if p.is_file() and "logs" not in p.relative_to(folder).parts
    }


@pytest.fixture(scope="module")
def bad_input(tmp_path_factory, data_dir):
    """Run every case; → (name -> result, name -> the case's folder, hashes before, hashes after)."""
    tmp = {name: tmp_path_factory.mktemp(name) for name in [*EXPECTED, "no_logger", "unknown_model"]}
    good = tmp_path_factory.mktemp("good")
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good / "last.ckpt")
    truncated = (good / "last.ckpt").read_bytes()

    def train(name, *args):
        paths = [f"paths.data_dir={data_dir}", f"paths.log_dir={tmp[name] / 'logs'}"]
        return "facezoo.train", [*TINY, *paths, *args], tmp[name]

    def ffhqr(name):
        root = _ffhqr(tmp[name] / "ffhqr", name)
        args = ["datamodule=ffhqr", f"datamodule.data_dir={root}", "datamodule.image_size=64",
                f"paths.log_dir={tmp[name] / 'logs'}", "debug=tiny", *QUIET]
        return "facezoo.train", args, tmp[name]

    for name in ("resume_corrupt", "eval_corrupt"):
        (tmp[name] / "truncated.ckpt").write_bytes(truncated[: len(truncated) // 2])
    (tmp["eval_empty_run"] / "empty_run" / "checkpoints").mkdir(parents=True)
    config = {"model": {"_target_": "facezoo.models.gpen.GPEN",
                        "generator": hostile_target(tmp["eval_crafted"] / "pwned.txt")},
              "datamodule": {"_target_": "facezoo.datamodules.restore.RestoreDataModule"}}
    torch.save({"state_dict": {}, "facezoo_config": config, "facezoo_format": 1},
               tmp["eval_crafted"] / "crafted.ckpt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp["import_unknown"] / "other.pth")

    nothing = tmp["missing_data"] / "none"
    commands = {
        "gamma": train("gamma", "split.gamma=1.5"),
        "missing_data": ("facezoo.train", ["datamodule=ffhqr", f"paths.data_dir={nothing}",
                                           f"paths.log_dir={nothing.parent / 'logs'}"], nothing.parent),
        **{name: ffhqr(name) for name in ("corrupt_image", "truncated_jpeg", "corrupt_test_image",
                                          "unpaired_image")},
        "seed": train("seed", "seed=abc"),
        "num_workers": train("num_workers", "datamodule.num_workers=-1"),
        "image_size_zero": train("image_size_zero", "datamodule.image_size=0"),
        "image_size_negative": train("image_size_negative", "datamodule.image_size=-8"),
        "image_size_multiple": train("image_size_multiple", "model=retouchformer",
                                     "datamodule.image_size=40"),
        "negative_lr": train("negative_lr", "model.optimizers.generator.lr=-0.1"),
        "too_few_samples": train("too_few_samples", "datamodule.batch_size=5000"),
        "resume_corrupt": train("resume_corrupt", f"ckpt_path={tmp['resume_corrupt'] / 'truncated.ckpt'}"),
        "resume_missing": train("resume_missing", f"ckpt_path={tmp['resume_missing'] / 'nothing.ckpt'}"),
        "eval_no_ckpt_path": ("facezoo.eval", [], tmp["eval_no_ckpt_path"]),
        "eval_corrupt": ("facezoo.eval", [f"ckpt_path={tmp['eval_corrupt'] / 'truncated.ckpt'}"],
                         tmp["eval_corrupt"]),
        "eval_empty_run": ("facezoo.eval", [f"ckpt_path={tmp['eval_empty_run'] / 'empty_run'}"],
                           tmp["eval_empty_run"]),
        "eval_crafted": ("facezoo.eval", [f"ckpt_path={tmp['eval_crafted'] / 'crafted.ckpt'}"],
                         tmp["eval_crafted"]),
        "import_unknown": ("facezoo.weights.cli", [tmp["import_unknown"] / "other.pth", "--out",
                                                    tmp["import_unknown"] / "x.ckpt"], tmp["import_unknown"]),
        # not bad input: Hydra refuses `group=null` for a group with a default; facezoo reads it as `~group`
        "no_logger": train("no_logger", "logger=null", "test=false"),
        "unknown_model": train("unknown_model", "model=nope"),
    }
    before = _hashes(data_dir, good, *tmp.values())
    results = run_modules(commands)
    return results, tmp, before, _hashes(data_dir, good, *tmp.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_is_one_line_naming_what_was_expected(bad_input, name):
    proc, folder = bad_input[0][name], bad_input[1][name]
    code, message = EXPECTED[name]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == code and last.startswith("facezoo: error: "), proc.stderr[-3000:]
    assert message.format(tmp=folder) in last


def test_bad_input_changes_no_file_already_written(bad_input, data_dir):
    before, after = bad_input[2], bad_input[3]
    assert after.items() >= before.items()  # nothing changed or went away
    new = [p for p in after if p not in before and data_dir not in p.parents]  # (the synthetic set renders)
    assert new == []  # new run folders (logs/) aside
    assert not (bad_input[1]["eval_crafted"] / "pwned.txt").exists()
    assert not (bad_input[1]["import_unknown"] / "x.ckpt").exists()


def test_logger_null_means_no_logger(bad_input):
    proc, folder = bad_input[0]["no_logger"], bad_input[1]["no_logger"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((folder / "logs").rglob("checkpoints"))
    assert len(runs) == 1 and not list((folder / "logs").rglob("metrics.csv"))


def test_an_unknown_model_names_the_option(bad_input):
    proc = bad_input[0]["unknown_model"]
    assert "Could not find 'model/nope'" in proc.stderr and "Traceback" not in proc.stderr
