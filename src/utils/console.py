"""What the commands show on the console: progress that reads on a terminal and in a log, without Lightning's
noise.

- `on_terminal()`: whether stdout is a terminal (a live bar), or a file, a pipe or CI (plain lines).
- `progress(total, what, unit)`: the progress of a long loop (rendering the synthetic set): a Rich bar on a
  terminal; otherwise one log line at the start, one every `INTERVAL_S` seconds and one at the end.
- `Ticker`: when the next plain line is due (shared with the training callback, facezoo.callbacks.progress).
- `quiet_lightning()`: drops what Lightning prints on every run that tells a facezoo user nothing: its
  advertising tips, the TPU line of a machine without one, and a FutureWarning torch raises inside Lightning.
"""

import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

log = logging.getLogger("facezoo")

INTERVAL_S = 30.0  # seconds between two plain progress lines


def on_terminal() -> bool:
    return sys.stdout.isatty()


def duration(seconds: float) -> str:
    """'42s', '3m05s', '1h02m'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Ticker:
    """When a plain progress line is due: every `interval` seconds, and every `every` steps when given."""

    def __init__(self, interval: float = INTERVAL_S, every: int | None = None) -> None:
        self.interval, self.every = float(interval), every
        self.start = self.last = time.monotonic()

    def due(self, step: int) -> bool:
        now = time.monotonic()
        if (self.every and step % self.every == 0) or now - self.last >= self.interval:
            self.last = now
            return True
        return False

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _bar(what: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}")
    bar = Progress(TextColumn("{task.description}", markup=False), *columns)
    bar.add_task(what, total=total, note="")
    return bar


@contextmanager
def progress(
    total: int, what: str, unit: str, interval: float = INTERVAL_S
) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n, note="")`, to call as `n` of `total` units are done (`note`: e.g. a rate, shown
    after the bar and in the plain lines); `what` says what is happening. The first and last lines are logged
    on a terminal too (they also go to the run's log file)."""
    log.info("%s: %d %s", what, total, unit)
    ticker, done = Ticker(interval), 0
    with _bar(what, total) if on_terminal() else nullcontext() as bar:

        def advance(n: int, note: str = "") -> None:
            nonlocal done
            done += n
            if bar is not None:
                bar.update(bar.task_ids[0], advance=n, note=note)
            elif done < total and ticker.due(done):
                left = ticker.elapsed() / done * (total - done)
                log.info("%s: %d/%d %s, %s left%s", what, done, total, unit, duration(left),
                         f", {note}" if note else "")

        yield advance
    log.info("%s: %d %s in %s", what, done, unit, duration(ticker.elapsed()))


class _LightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("💡 Tip:") or message.startswith("TPU available: False"))


def quiet_lightning() -> None:
    """Silence Lightning's tips, its 'TPU available: False' line and torch's LeafSpec FutureWarning raised
    inside Lightning's loops (idempotent; imports nothing)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _LightningNoise) for f in logger.filters):
            logger.addFilter(_LightningNoise())
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
