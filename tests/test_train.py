"""End-to-end training through `train(cfg)` (src/train.py) on tiny configs: outputs, resume, eval, loggers;
and, marked `slow` (`make test-full`), the default recipe learning on the synthetic data."""

import json
import math

import pytest
import torch

from facezoo.train import train
from facezoo.utils.compose import compose_config
from helpers import QUIET, TINY, LossRecorder


def test_train_writes_checkpoints_metrics_and_grid(tmp_path, data_dir):
    cfg = compose_config(overrides=[*TINY, "split.gamma=0.5"], output_dir=tmp_path, data_dir=data_dir)
    metrics = train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and (
        tmp_path / "checkpoints" / "best.ckpt"
    ).is_file()
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "samples" / "test.png").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics) and 0 < saved["test/psnr"] < 60 and -1 <= saved["test/ssim"] <= 1
    split = json.loads((tmp_path / "split.json").read_text())
    identities = cfg.datamodule.synthetic.sizes.train
    assert split["gamma"] == 0.5 and split["sizes"]["paired"] == math.ceil(0.5 * identities)
    assert sum(split["sizes"].values()) == identities
    assert "| test/psnr |" in (tmp_path / "metrics.md").read_text()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)  # no pickled objects inside
    assert int(ckpt["state_dict"]["batch_counter"]) == 3


def test_restoration_data_trains(tmp_path, data_dir):
    cfg = compose_config(
        overrides=[*TINY, "datamodule=synthetic_restore"], output_dir=tmp_path, data_dir=data_dir
    )
    metrics = train(cfg)
    assert "test/psnr" in metrics and not (tmp_path / "split.json").exists()


def test_eval_takes_a_run_folder_and_the_size_the_model_was_trained_at(tmp_path, data_dir, capsys):
    from facezoo.eval import evaluate

    cfg = compose_config(overrides=[*TINY, "datamodule=synthetic_restore"], output_dir=tmp_path / "run",
                         data_dir=data_dir)
    metrics = train(cfg)
    tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
    # the same faces through `datamodule=ffhq`, whose default size is 512
    faces = cfg.datamodule.data_dir
    ffhq = [f"ckpt_path={tmp_path / 'run'}", "datamodule=ffhq", f"datamodule.data_dir={faces}",
            "datamodule.eval_batch_size=8", "trainer.limit_test_batches=1"]
    capsys.readouterr()
    evaluated = evaluate(compose_config("eval", ffhq, output_dir=tmp_path / "eval", data_dir=data_dir))
    assert "eval at 64 px, the size best.ckpt was trained at" in capsys.readouterr().out
    assert evaluated == pytest.approx(tested, rel=1e-6)
    told = compose_config("eval", [*ffhq, "datamodule.image_size=96"], output_dir=tmp_path / "eval96",
                          data_dir=data_dir)
    assert evaluate(told) != pytest.approx(tested, rel=1e-6)  # a size on the command line is kept
    assert "eval at" not in capsys.readouterr().out


def test_wandb_offline_writes_a_run(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_config(overrides=[*TINY, "logger=wandb"], output_dir=tmp_path, data_dir=data_dir)
    train(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))


def test_wandb_is_offline_without_an_account(tmp_path, monkeypatch):
    from facezoo.utils.loggers import wandb_logger

    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    assert wandb_logger(save_dir=str(tmp_path), project="p")._offline
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert not wandb_logger(save_dir=str(tmp_path), project="p")._offline


GFPGAN_LOSSES = ("pixel", "gan", "d")


@pytest.mark.parametrize("recipe", ["gfpgan_simple", "gfpgan_paper"])  # 2 optimizers, or 5 (component Ds)
def test_iterations_count_batches_whatever_the_optimizers(tmp_path, data_dir, recipe):
    """`iterations=5` trains 5 batches across epochs of 3, with 2 or 5 optimizer steps per batch; a run
    resumed after batch 2 stops at the same batch, and resuming the finished run trains nothing."""
    overrides = [
        *TINY, "model=gfpgan", f"model/recipe={recipe}", "model.prior.from_scratch=true",
        "datamodule=synthetic_restore", "datamodule.component_boxes=auto", "iterations=5",
        "trainer.max_epochs=-1", "trainer.limit_train_batches=3", "test=false",
    ]
    mid = tmp_path / "mid.ckpt"
    full = LossRecorder(GFPGAN_LOSSES, save_at=2, path=mid)
    train(compose_config(overrides=overrides, output_dir=tmp_path / "full", data_dir=data_dir), [full])
    assert full.counters == [1, 2, 3, 4, 5]
    resumed = LossRecorder(GFPGAN_LOSSES)
    cfg = compose_config(
        overrides=[*overrides, f"ckpt_path={mid}"], output_dir=tmp_path / "b", data_dir=data_dir
    )
    train(cfg, callbacks=[resumed])
    assert resumed.counters == [3, 4, 5]
    flat = [v for batch in resumed.losses for v in batch]
    assert flat == pytest.approx([v for batch in full.losses[2:] for v in batch], rel=1e-5, abs=1e-6)
    finished = LossRecorder(keys=())
    cfg = compose_config(
        overrides=[*overrides, f"ckpt_path={tmp_path / 'full'}"], output_dir=tmp_path / "c", data_dir=data_dir
    )
    train(cfg, callbacks=[finished])
    assert finished.counters == []


@pytest.mark.slow
def test_default_recipe_learns(tmp_path, data_dir):
    """The baseline recipe (baseline_synthetic), shortened: the generator EMA ends far above its start."""
    overrides = [
        "experiment=baseline_synthetic",
        *QUIET,
        "trainer.max_epochs=4",
        "datamodule.synthetic.size=64",
        "datamodule.image_size=64",
        "model.generator.depth=6",
    ]
    metrics = train(compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir))
    # an untrained generator scores about 12 dB / SSIM 0.01 here (tests above); 4 epochs give ~21 dB / 0.33
    assert metrics["test/psnr"] > 18 and metrics["test/ssim"] > 0.2, metrics
