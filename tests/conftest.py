"""Shared fixtures. The torchvision shim is imported explicitly first (src/utils/torchvision_shim.py)."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import facezoo.utils.torchvision_shim  # noqa: E402,F401

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Every test sees an empty torch hub cache: nothing may rely on weights found by chance."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))


import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def run_module(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run `python -m <module> args...` the way a user does; returns the CompletedProcess."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One folder for the synthetic data sets, rendered once per session."""
    return tmp_path_factory.mktemp("data")


QUIET = ["~callbacks.progress_bar", "callbacks.lr_monitor=null"]
TINY = ["debug=tiny", *QUIET, "datamodule.synthetic.size=64"]  # synthetic data sets only


@pytest.fixture(scope="session")
def vgg19_features() -> torch.nn.Sequential:
    """torchvision's vgg19().features with random weights (`make_layers(cfgs['E'])`, no 120M classifier)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    return make_layers(cfgs["E"]).eval()


@pytest.fixture(scope="session")
def vgg19_folder(tmp_path_factory, vgg19_features) -> Path:
    """A folder holding a random VGG19 in torchvision layout under the real file name (tests only)."""
    from facezoo.utils.pretrained import KNOWN_WEIGHTS

    folder = tmp_path_factory.mktemp("vgg")
    state = {f"features.{k}": v for k, v in vgg19_features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, folder / KNOWN_WEIGHTS["vgg19"].filename)
    return folder


def first_batch(datamodule) -> dict:
    """The first training batch of `datamodule`, transferred (degraded / normalised) as in training."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)


def fit_repeated(model, batch: dict, n: int):
    """Train `model` for `n` steps on the same ready batch (no validation, no checkpoints); the Trainer."""
    import pytorch_lightning as pl

    from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule

    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, num_sanity_val_steps=0, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=RepeatedBatchDataModule(batch, n))
    return trainer


class LossRecorder:
    """A Lightning callback (built lazily: conftest must not import Lightning early) recording, after every
    training batch, the logged `train/<key>` values (plus `extra(pl_module)` values) and the batch counter;
    with `save_at`, saves a checkpoint to `path` after that many batches."""

    def __new__(cls, keys=("l1",), save_at: int | None = None, path=None, extra=None):
        import pytorch_lightning as pl

        class _Recorder(pl.Callback):
            def __init__(self) -> None:
                self.losses, self.counters = [], []

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                values = [float(trainer.callback_metrics[f"train/{k}"]) for k in keys]
                self.losses.append([*values, *(extra(pl_module) if extra else [])])
                self.counters.append(int(pl_module.batch_counter))
                if save_at is not None and len(self.counters) == save_at:
                    trainer.save_checkpoint(path)

        return _Recorder()


def train_with(cfg, callback, monkeypatch) -> dict:
    """Run `facezoo.train.train(cfg)` with one extra callback; its metrics."""
    import facezoo.train as train_module
    from facezoo.utils.instantiate import instantiate_group as original

    def with_callback(group, what):
        objects = original(group, what)
        return objects + [callback] if what == "callbacks" else objects

    monkeypatch.setattr(train_module, "instantiate_group", with_callback)
    return train_module.train(cfg)
