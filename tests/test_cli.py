"""The command line as a user runs it: multirun sweeps, DDP on CPU, and one-line errors for bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers import QUIET, TINY, run_module


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


def test_invalid_gamma_is_one_line(tmp_path, data_dir):
    proc = run_module("facezoo.train", *_common(tmp_path, data_dir), "split.gamma=1.5", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        _error_line(proc)
        == "facezoo: error: split.gamma=1.5: expected the paired ratio as a number with 0 < gamma <= 1"
    )


def test_unknown_model_names_the_option(tmp_path, data_dir):
    proc = run_module("facezoo.train", *_common(tmp_path, data_dir), "model=nope", cwd=tmp_path)
    assert "Could not find 'model/nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_folder_is_named(tmp_path):
    proc = run_module(
        "facezoo.train",
        "datamodule=ffhqr",
        f"paths.data_dir={tmp_path / 'nothing'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "nothing/FFHQR: data folder not found" in _error_line(proc)


@pytest.mark.parametrize("damage", ["corrupt", "unpaired"])
def test_bad_files_are_named(tmp_path, damage):
    root = tmp_path / "ffhqr"
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
    proc = run_module(
        "facezoo.train",
        "datamodule=ffhqr",
        f"datamodule.data_dir={root}",
        "datamodule.image_size=64",
        f"paths.log_dir={tmp_path / 'logs'}",
        "debug=tiny",
        *QUIET,
        cwd=tmp_path,
    )
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


def test_eval_refuses_a_checkpoint_whose_config_names_foreign_code(tmp_path):
    import torch

    from helpers import hostile_target

    marker = tmp_path / "pwned.txt"
    config = {
        "model": {"_target_": "facezoo.models.gpen.GPEN", "generator": hostile_target(marker)},
        "datamodule": {"_target_": "facezoo.datamodules.restore.RestoreDataModule"},
    }
    torch.save({"state_dict": {}, "facezoo_config": config, "facezoo_format": 1}, tmp_path / "crafted.ckpt")
    proc = run_module("facezoo.eval", f"ckpt_path={tmp_path / 'crafted.ckpt'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert _error_line(proc) == (
        f"facezoo: error: {tmp_path / 'crafted.ckpt'}: model.generator: refused to build _target_ "
        "'pathlib.Path.write_text'; a stored config may only name facezoo networks, modules and datamodules, "
        "torch.optim optimizers and schedulers, torch.nn modules"
    )
    assert not marker.exists()


def test_import_of_an_unknown_file_is_one_line(tmp_path):
    import torch

    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    proc = run_module("facezoo.weights.cli", str(tmp_path / "other.pth"), "--out", str(tmp_path / "x.ckpt"),
                      cwd=tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "x.ckpt").exists()
    assert _error_line(proc).startswith(
        f"facezoo: error: {tmp_path / 'other.pth'}: no known generator; facezoo reads facezoo checkpoints"
    )
