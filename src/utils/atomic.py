"""Atomic file writes: the one place facezoo writes a file it keeps (checkpoints, metrics, manifests, images).

`atomic_file(path)` writes into `.<name>.tmp-<pid>` in the same folder, then flushes, fsyncs and renames it
onto `path` (`os.replace`, atomic on POSIX). A failure at any point removes the temporary and leaves the
previous `path` as it was: readers see the old file or the new one, never a truncated one. A failed write
(a full disk, no permission) is a `WriteError`, one line naming the file.

A killed process cannot clean up: `remove_stale_temporaries(folder)` removes the temporaries whose process no
longer runs (the training entry point calls it on its run folder).
"""

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from facezoo.utils.errors import WriteError

_TEMPORARY = re.compile(r"\..+\.tmp-(\d+)")


def temporary_path(path: Path) -> Path:
    """Where `atomic_file(path)` writes before the rename: `.<name>.tmp-<pid>` beside `path`."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _os_error(err: BaseException | None) -> OSError | None:
    """The OSError behind `err`, if any: libraries re-raise a failed `write` as their own error (torch.save
    ends in a RuntimeError raised while handling the OSError), so the chain is followed."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """A file object open on a temporary beside `path` ("wb", or "w": UTF-8 text written as given, no
    newline translation); on success it replaces `path`, on any exception it is removed and `path` is
    untouched. `durable=False` skips the fsync (about 13 ms a file here): still all-or-nothing if the
    process dies, not if the machine does; for files cheap to make again, e.g. the synthetic data set's
    thousands of images (after a power cut the data check at setup names any that came out empty)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):  # e.g. no folder to create it in
            tmp.unlink(missing_ok=True)
        cause = _os_error(err) if isinstance(err, Exception) else None  # never hide a Ctrl-C
        if cause is None:
            raise
        raise WriteError(
            f"{path}: could not write ({cause.strerror or cause}); the previous file, if any, is unchanged"
        ) from err


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)


def _running(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 only checks; POSIX)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the `.<name>.tmp-<pid>` files under `folder` (recursively) left by processes that no longer
    run; those of running processes (a write in progress) are kept. → the files removed."""
    removed = []
    for tmp in sorted(Path(folder).rglob(".*.tmp-*")):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match and tmp.is_file() and not _running(int(match.group(1))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
