"""One live run per run folder: `claim_run_folder` takes an exclusive lock on `<run>/.lock` for the life of
the process. A second run pointed at the same folder (a reused `hydra.run.dir`) is refused instead of silently
overwriting the first one's checkpoints. The lock is the kernel's (`flock`): it goes with the process, so a
killed run (even `kill -9`) never leaves a stale lock behind."""

import fcntl
import os
from pathlib import Path

from facezoo.utils.errors import ConfigError

LOCK = ".lock"
_held: dict[Path, int] = {}  # run folder -> the open lock file (kept open: closing it releases the lock)


def claim_run_folder(folder: str | os.PathLike) -> None:
    """Lock `folder` for this process (again for the same process: nothing to do)."""
    folder = Path(folder).resolve()
    if folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(
            f"{folder}: the run folder is in use by a live run (pid {owner}); give the new run its own "
            "folder (hydra.run.dir=...) or wait for that one to end"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[folder] = fd


def release_run_folder(folder: str | os.PathLike) -> None:
    """Unlock `folder` (a process that ends releases it anyway)."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)
