"""Stopping a run without losing it: Ctrl-C, SIGTERM (a cluster pre-emption, `kill`) and, in the worker
processes of a multi-process run, the end of the launcher that started them.

Each finishes the batch in progress (every optimizer step of a GAN batch: never between the G and D steps),
saves `last.ckpt`, and ends the program with 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, so a chain
of commands (`make sweep`, a job script) stops instead of carrying on as if training had finished. The run
resumes with `ckpt_path=<run folder>` exactly where it stopped. A second Ctrl-C (2 s or more after the first)
aborts at once without saving; the previous `last.ckpt` is then the resume point.

In a multi-process run the ranks agree at each batch end (one all-reduce of a flag), so all of them stop after
the same batch; the launcher forwards its signals to the workers (`launched`), and a worker whose
launcher has gone (killed with -9) stops as if it had received SIGTERM.
"""

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

from facezoo.utils.errors import FacezooError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
ABORT_AFTER_S = 2.0  # a second Ctrl-C this long after the first aborts without saving
WATCH_INTERVAL_S = 0.5


class Interrupted(SystemExit):
    """The run stopped on a signal after saving `last.ckpt`; the exit code is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + int(signum))


def exit_code_signal(code: int | None) -> int | None:
    """The signal an `Interrupted` exit code stands for (130 → SIGINT, 143 → SIGTERM), else None."""
    return code - 128 if isinstance(code, int) and code - 128 in SIGNALS else None


def _is_worker(trainer: pl.Trainer) -> bool:
    """Whether this process was started by Lightning's launcher (and should end with it)."""
    launcher = trainer.strategy.launcher
    return isinstance(launcher, _MultiProcessingLauncher) or (
        isinstance(launcher, _SubprocessScriptLauncher) and trainer.local_rank > 0
    )


class StopOnSignal(pl.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.signum: int | None = None
        self._noticed_at = 0.0
        self._previous: dict[int, object] = {}
        self._done: threading.Event | None = None  # made in the process that trains (callbacks are pickled)

    # -- noticing -----------------------------------------------------------------------------------------
    def _notice(self, signum: int, frame) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT and time.monotonic() - self._noticed_at >= ABORT_AFTER_S:
                raise KeyboardInterrupt  # the second Ctrl-C: abort without saving
            return
        self.signum, self._noticed_at = signum, time.monotonic()
        rank_zero_info(
            f"\n{signal.Signals(signum).name}: finishing this batch, then saving {self.dirpath / 'last.ckpt'}"
            + (" (Ctrl-C again to abort without saving)" if signum == signal.SIGINT else "")
        )

    def _watch_launcher(self, launcher_pid: int, done: threading.Event) -> None:
        while not done.wait(WATCH_INTERVAL_S):
            if os.getppid() != launcher_pid:
                if self.signum is None:
                    self.signum, self._noticed_at = signal.SIGTERM, time.monotonic()
                return

    def on_train_start(self, trainer, pl_module) -> None:
        # after Lightning's own SIGTERM handler (registered before this hook), which would stop at epoch end
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        for signum in SIGNALS:
            signal.signal(signum, self._notice)
        if trainer.received_sigterm:  # it came while Lightning's handler was in place
            self.signum = signal.SIGTERM
        if _is_worker(trainer):
            self._done = done = threading.Event()
            threading.Thread(target=self._watch_launcher, args=(os.getppid(), done), daemon=True).start()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._done is not None:
            self._done.set()
            self._done = None
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    # -- stopping -----------------------------------------------------------------------------------------
    def _stop_now(self, trainer: pl.Trainer) -> bool:
        stop = self.signum is not None
        return trainer.strategy.reduce_boolean_decision(stop, all=False) if trainer.world_size > 1 else stop

    def _stop(self, trainer: pl.Trainer) -> None:
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        signum = self.signum or signal.SIGTERM  # a rank that did not see the signal stops with the others
        batch = int(trainer.lightning_module.batch_counter)
        rank_zero_info(
            f"stopped ({signal.Signals(signum).name}) after batch {batch}: saved a resumable checkpoint to "
            f"{path}; resume with ckpt_path={self.dirpath.parent}"
        )
        raise Interrupted(signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._stop_now(trainer):
            self._stop(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._stop_now(trainer):  # the signal came during the last validation: stop before testing
            self._stop(trainer)


# the last line of a worker's traceback when it ended on bad input (`facezoo.utils.errors`)
_WORKER_ERROR = re.compile(r"^facezoo\.utils\.errors\.\w+: (.+)$")


@contextlib.contextmanager
def launched(trainer: pl.Trainer):
    """Around `trainer.fit` and `trainer.test`: a SIGTERM outside training (Lightning's own handler, e.g.
    while testing) also ends the program with 143. In the launcher of spawned workers (`strategy=ddp_cpu`,
    `ddp_spawn`): SIGINT and SIGTERM are passed on to the workers, which stop after their batch
    (`StopOnSignal`), instead of the launcher dying and leaving them running; a worker that stopped on a
    signal ends the launcher with the same code, and one that ended on bad input with the same one-line error
    (not the worker's traceback)."""
    launcher = trainer.strategy.launcher
    spawned = isinstance(launcher, _MultiProcessingLauncher)
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    if spawned:
        for signum in SIGNALS:
            signal.signal(signum, lambda signum, frame: launcher.kill(signum))
    try:
        yield
    except SIGTERMException:
        raise Interrupted(signal.SIGTERM) from None
    except ProcessExitedException as err:
        signum = exit_code_signal(err.exit_code)
        if signum is None:
            raise
        raise Interrupted(signum) from None
    except ProcessRaisedException as err:
        lines = str(err).strip().splitlines()
        match = _WORKER_ERROR.match(lines[-1]) if lines else None
        if match is None:
            raise
        raise FacezooError(match.group(1)) from None
    finally:
        if spawned:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
