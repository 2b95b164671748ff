"""Training progress that reads on a terminal and in a log (conf/callbacks/default.yaml `progress_bar`).

On a terminal the Rich bar redraws in place. Written to a file, a pipe or CI, a redrawn bar shows only its
final state, so there `PlainProgress` logs lines instead: after the first batch, then every `interval_s`
seconds (or every `every_n_batches` batches) with the epoch, the batch, the run's batches, the time per batch
(validations included), the time left and the losses of the bar; and after every validation, its metrics.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import logging
import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

from facezoo.utils.console import INTERVAL_S, Ticker, duration, on_terminal

log = logging.getLogger("facezoo")


def progress_bar(interval_s: float = INTERVAL_S, every_n_batches: int | None = None) -> ProgressBar:
    """The Rich bar when stdout is a terminal, else `PlainProgress(interval_s, every_n_batches)`."""
    return RichProgressBar() if on_terminal() else PlainProgress(interval_s, every_n_batches)


def _values(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class PlainProgress(ProgressBar):
    """Progress as plain log lines (logger `facezoo`), on global rank 0."""

    def __init__(self, interval_s: float = INTERVAL_S, every_n_batches: int | None = None) -> None:
        super().__init__()
        self.interval_s, self.every_n_batches = interval_s, every_n_batches
        self._enabled = True
        self._ticker = Ticker(interval_s, every_n_batches)
        self._first = 0  # the run's batch count when this fit started (a resumed run starts past 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _run_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[int, int | None]:
        """(batches trained in the run, the run's length: the zoo module's `iterations` or the epochs'
        batches, whichever ends it first; None when neither is known)."""
        done = int(getattr(pl_module, "batch_counter", trainer.fit_loop.total_batch_idx))
        lengths = [getattr(pl_module, "iterations", None)]
        if trainer.max_epochs and trainer.max_epochs > 0 and math.isfinite(self.total_train_batches):
            lengths.append(trainer.max_epochs * int(self.total_train_batches))
        lengths = [n for n in lengths if n]
        return done, min(lengths) if lengths else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ticker = Ticker(self.interval_s, self.every_n_batches)
        self._first, total = self._run_batches(trainer, pl_module)
        if self._enabled:
            every = f"{self.every_n_batches} batches" if self.every_n_batches else duration(self.interval_s)
            log.info("training %s batches, %s per epoch; progress every %s", total or "?",
                     self.total_train_batches, every)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done, total = self._run_batches(trainer, pl_module)
        last = batch_idx + 1 >= self.total_train_batches or (total is not None and done >= total)
        if not self._enabled or not (self._ticker.due(batch_idx + 1) or last or done == self._first + 1):
            return
        per_batch = self._ticker.elapsed() / max(done - self._first, 1)
        parts = [f"epoch {trainer.current_epoch}", f"batch {batch_idx + 1}/{self.total_train_batches}"]
        if total:
            parts.append(f"run {done}/{total}")
            parts.append(f"{per_batch:.2f} s/batch, {duration(per_batch * max(total - done, 0))} left")
        else:
            parts.append(f"{per_batch:.2f} s/batch")
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        log.info("%s | %s", ", ".join(parts), _values(metrics))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        done, total = self._run_batches(trainer, pl_module)
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("val/")}
        at = f"run batch {done}/{total}" if total else f"epoch {trainer.current_epoch}"
        log.info("validation after %s | %s", at, _values(metrics))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled:
            done, _ = self._run_batches(trainer, pl_module)
            log.info("training done: %d batches in %s", done - self._first, duration(self._ticker.elapsed()))
