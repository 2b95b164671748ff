"""The command line as a user runs it: multirun sweeps, DDP on CPU, SIGTERM, and one-line errors for bad input
(the bad-input commands share one Python process: `run_modules`)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import QUIET, TINY, hostile_target, run_module, run_modules


def _common(tmp_path, data_dir):
    return [*TINY, f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", "test=false"]


def test_gamma_multirun_gives_one_run_per_value_with_its_own_split(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    proc = run_module(
        "facezoo.train",
        "-m",
        *_common(tmp_path, data_dir),
        "split.gamma=0.1,1.0",
        f"hydra.sweep.dir={sweep}",
        "logger=wandb",
        cwd=tmp_path,
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    splits = [json.loads((sweep / str(i) / "split.json").read_text()) for i in range(2)]
    assert [s["gamma"] for s in splits] == [0.1, 1.0]
    assert splits[0]["paired"] != splits[1]["paired"] and set(splits[0]["paired"]) < set(splits[1]["paired"])
    # every job closed its own wandb run
    assert all(len(list((sweep / str(i) / "wandb").glob("offline-run-*"))) == 1 for i in range(2))


def test_ddp_cpu_trains_with_two_processes(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = run_module(
        "facezoo.train",
        *_common(tmp_path, data_dir),
        "strategy=ddp_cpu",
        "split.gamma=0.5",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "world_size: 2" in proc.stderr + proc.stdout
        or "Initializing distributed: GLOBAL_RANK: 1" in proc.stderr
    )
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "split.json").is_file()


def _error_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def _ffhqr_with_a_bad_file(root, damage: str):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for name in ("a", "b", "c", "d"):
            for sub in ("source", "target"):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                    root / split / sub / f"{name}.png"
                )
    bad = root / "train" / "source" / "b.png"
    if damage == "corrupt":
        bad.write_bytes(b"not an image at all")
    else:
        (root / "train" / "target" / "b.png").unlink()
    return root


@pytest.fixture(scope="module")
def bad_input(tmp_path_factory, data_dir):
    """Every bad-input command of this file, run in one Python process (see `run_modules`): name -> result,
    plus the folder each ran in."""
    tmp = {name: tmp_path_factory.mktemp(name) for name in
           ("gamma", "model", "missing", "corrupt", "unpaired", "crafted", "unknown")}
    for damage in ("corrupt", "unpaired"):
        _ffhqr_with_a_bad_file(tmp[damage] / "ffhqr", damage)
    generator = hostile_target(tmp["crafted"] / "pwned.txt")
    config = {
        "model": {"_target_": "facezoo.models.gpen.GPEN", "generator": generator},
        "datamodule": {"_target_": "facezoo.datamodules.restore.RestoreDataModule"},
    }
    crafted = {"state_dict": {}, "facezoo_config": config, "facezoo_format": 1}
    torch.save(crafted, tmp["crafted"] / "crafted.ckpt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp["unknown"] / "other.pth")

    def bad_ffhqr(damage):
        root = tmp[damage] / "ffhqr"
        args = ["datamodule=ffhqr", f"datamodule.data_dir={root}", "datamodule.image_size=64",
                f"paths.log_dir={tmp[damage] / 'logs'}", "debug=tiny", *QUIET]
        return "facezoo.train", args, tmp[damage]

    results = run_modules({
        "gamma": ("facezoo.train", [*_common(tmp["gamma"], data_dir), "split.gamma=1.5"], tmp["gamma"]),
        "model": ("facezoo.train", [*_common(tmp["model"], data_dir), "model=nope"], tmp["model"]),
        "missing": ("facezoo.train", ["datamodule=ffhqr", f"paths.data_dir={tmp['missing'] / 'nothing'}",
                                      f"paths.log_dir={tmp['missing'] / 'logs'}"], tmp["missing"]),
        "corrupt": bad_ffhqr("corrupt"),
        "unpaired": bad_ffhqr("unpaired"),
        "crafted": ("facezoo.eval", [f"ckpt_path={tmp['crafted'] / 'crafted.ckpt'}"], tmp["crafted"]),
        "unknown": ("facezoo.weights.cli", [tmp["unknown"] / "other.pth", "--out", tmp["unknown"] / "x.ckpt"],
                    tmp["unknown"]),
    })
    return results, tmp


def test_invalid_gamma_is_one_line(bad_input):
    proc = bad_input[0]["gamma"]
    assert proc.returncode == 2
    assert (
        _error_line(proc)
        == "facezoo: error: split.gamma=1.5: expected the paired ratio as a number with 0 < gamma <= 1"
    )


def test_unknown_model_names_the_option(bad_input):
    proc = bad_input[0]["model"]
    assert "Could not find 'model/nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_folder_is_named(bad_input):
    proc = bad_input[0]["missing"]
    assert proc.returncode == 2 and "nothing/FFHQR: data folder not found" in _error_line(proc)


@pytest.mark.parametrize("damage", ["corrupt", "unpaired"])
def test_bad_files_are_named(bad_input, damage):
    proc = bad_input[0][damage]
    line = _error_line(proc)
    assert proc.returncode == 2
    assert (
        ("source/b.png: not a readable image" in line)
        if damage == "corrupt"
        else ("source/b.png: no partner" in line)
    )


def test_sigterm_leaves_a_resumable_run(tmp_path, data_dir):
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    out = tmp_path / "run"
    args = [
        *_common(tmp_path, data_dir),
        "trainer.max_epochs=1000",
        f"hydra.run.dir={out}",
        "callbacks.model_checkpoint.save_last=false",
        "callbacks.sample_grid=null",
    ]
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "facezoo.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "best.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)  # training has started once the first epoch's checkpoint exists
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file(), output[-2000:]
    counter = int(torch.load(last, weights_only=True)["state_dict"]["batch_counter"])
    assert counter >= 3 and "saved a resumable checkpoint" in output

    resumed = run_module(
        "facezoo.train",
        *_common(tmp_path, data_dir),
        f"ckpt_path={out}",
        f"trainer.max_epochs={counter // 3 + 1}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(final["state_dict"]["batch_counter"]) > counter


def test_eval_refuses_a_checkpoint_whose_config_names_foreign_code(bad_input):
    proc, tmp = bad_input[0]["crafted"], bad_input[1]["crafted"]
    assert proc.returncode == 2
    assert _error_line(proc) == (
        f"facezoo: error: {tmp / 'crafted.ckpt'}: model.generator: refused to build _target_ "
        "'pathlib.Path.write_text'; a stored config may only name facezoo networks, modules and datamodules, "
        "torch.optim optimizers and schedulers, torch.nn modules"
    )
    assert not (tmp / "pwned.txt").exists()


def test_import_of_an_unknown_file_is_one_line(bad_input):
    proc, tmp = bad_input[0]["unknown"], bad_input[1]["unknown"]
    assert proc.returncode == 2 and not (tmp / "x.ckpt").exists()
    assert _error_line(proc).startswith(
        f"facezoo: error: {tmp / 'other.pth'}: no known generator; facezoo reads facezoo checkpoints"
    )
