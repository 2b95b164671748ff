"""The command line as a user runs it: multirun sweeps and DDP on CPU (bad input: tests/test_bad_input.py,
faults: tests/test_faults.py)."""

import json

from helpers import TINY, run_module


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
