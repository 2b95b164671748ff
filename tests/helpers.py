"""Helpers shared by the tests (imported as `from helpers import ...`; conftest holds only fixtures)."""

import os
import subprocess
import sys
from pathlib import Path

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


QUIET = ["~callbacks.progress_bar", "callbacks.lr_monitor=null"]
TINY = ["debug=tiny", *QUIET, "datamodule.synthetic.size=64"]  # synthetic data sets only


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
    training batch, the logged `train/<key>` values (plus `extra(pl_module)` values) and the batch counter,
    and in `logs` every loss the module's `train_step` returned for that batch, and in `final_state` the
    module's state_dict when training ends; with `save_at`, saves a checkpoint to `path` after that many
    batches."""

    def __new__(cls, keys=("l1",), save_at: int | None = None, path=None, extra=None):
        import pytorch_lightning as pl

        class _Recorder(pl.Callback):
            def __init__(self) -> None:
                self.losses, self.counters, self.logs, self.final_state = [], [], [], {}

            def on_train_start(self, trainer, pl_module):
                train_step = pl_module.train_step

                def recorded(batch):
                    logs = train_step(batch)
                    self.logs.append({k: float(v) for k, v in sorted(logs.items())})
                    return logs

                pl_module.train_step = recorded

            def on_train_end(self, trainer, pl_module):
                self.final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                values = [float(trainer.callback_metrics[f"train/{k}"]) for k in keys]
                self.losses.append([*values, *(extra(pl_module) if extra else [])])
                self.counters.append(int(pl_module.batch_counter))
                if save_at is not None and len(self.counters) == save_at:
                    trainer.save_checkpoint(path)

        return _Recorder()


def hostile_target(marker: Path) -> dict:
    """A config node that, if instantiated, writes `marker` (`Path(marker).write_text('pwned')`): what a
    crafted checkpoint may carry in its config (tests/test_checkpoints.py)."""
    path = {"_target_": "pathlib.Path", "_args_": [str(marker)]}
    return {"_target_": "pathlib.Path.write_text", "_args_": [path, "pwned"]}


class WritesOnUnpickle:
    """Unpickling an instance writes `marker` (a checkpoint that runs code when loaded without
    `weights_only=True`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return Path.write_text, (self.marker, "pwned")
