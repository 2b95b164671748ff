"""Atomic writes (src/utils/atomic.py): a write that fails midway (a full disk) leaves the previous file
byte-identical and no temporary, as one `FacezooError` line naming the file; stale temporaries of dead
processes are removed, those of running ones kept; `facezoo-import --out` over a good checkpoint on a full
disk leaves it as it was."""

import errno
import hashlib
import io
import os
import subprocess
import sys

import pytest
import torch

from facezoo.checkpoints import save_checkpoint
from facezoo.models.components.gpen import GPENGenerator
from facezoo.utils import atomic
from facezoo.utils.atomic import atomic_file, remove_stale_temporaries, write_bytes, write_text
from facezoo.utils.errors import FacezooError, WriteError
from facezoo.weights.cli import main as import_main

TINY_GPEN = dict(size=64, style_dim=32, n_mlp=2, narrow=0.0625)  # = tiny_gpen.yaml
ROOM = 64  # bytes the full disk takes before failing
NO_SPACE = os.strerror(errno.ENOSPC)


class _FullDisk(io.FileIO):
    """A file on a disk with `ROOM` bytes left: a write past them writes what fits, then fails (ENOSPC)."""

    def write(self, data) -> int:
        data = bytes(data)
        if self.tell() + len(data) > ROOM:
            super().write(data[: max(0, ROOM - self.tell())])
            raise OSError(errno.ENOSPC, NO_SPACE)
        return super().write(data)


def _open_on_full_disk(file, mode="r", **kwargs):
    raw = _FullDisk(file, "wb")
    return raw if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), **kwargs)


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(atomic, "open", _open_on_full_disk, raising=False)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


WRITERS = {
    "bytes": lambda path: write_bytes(path, b"new " * 1000),
    "text": lambda path: write_text(path, "new\n" * 1000),  # fails at the flush (buffered text)
    "checkpoint": lambda path: save_checkpoint({"w": torch.arange(1000.0)}, path),  # torch wraps the OSError
}


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_write_failing_midway_leaves_the_previous_file_and_no_temporary(tmp_path, full_disk, writer):
    path = tmp_path / "good.bin"
    path.write_bytes(b"the previous file " * 100)
    before = _sha(path)
    with pytest.raises(WriteError):
        writer(path)
    assert _sha(path) == before
    assert list(tmp_path.iterdir()) == [path]


def test_a_write_error_is_one_line_naming_the_file(tmp_path, full_disk):
    path = tmp_path / "metrics.json"
    with pytest.raises(FacezooError) as err:
        write_text(path, "x" * 1000)
    assert str(err.value) == f"{path}: could not write ({NO_SPACE}); the previous file, if any, is unchanged"
    assert not path.exists()


def test_a_real_os_error_names_the_file_and_other_errors_pass_unchanged(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(WriteError, match=r"^\S+/taken/out\.json: could not write \(.+\); the previous"):
        write_text(tmp_path / "taken" / "out.json", "{}")
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="not a write error"), atomic_file(path) as f:
        f.write(b"half of the new file")
        raise ValueError("not a write error")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "taken"]


def test_a_successful_write_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "a.md"
    assert write_text(path, "é\r\nb\n") == path and path.read_bytes() == "é\r\nb\n".encode()  # as given
    write_bytes(path, b"second")
    assert path.read_bytes() == b"second" and list(path.parent.iterdir()) == [path]


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()  # reaped: its pid names no process
    dead = tmp_path / "run" / "checkpoints" / f".last.ckpt.tmp-{child.pid}"
    live = tmp_path / "run" / f".metrics.json.tmp-{os.getpid()}"
    not_ours = tmp_path / "run" / f"notes.tmp-{child.pid}"  # not a hidden `.<name>.tmp-<pid>`
    for path in (dead, live, not_ours):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and not_ours.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_import_over_a_good_checkpoint_on_a_full_disk_leaves_it_unchanged(tmp_path, monkeypatch, capsys):
    release, out = tmp_path / "GPEN-BFR-64.pth", tmp_path / "gpen.ckpt"
    torch.manual_seed(0)
    torch.save(GPENGenerator(**TINY_GPEN).state_dict(), release)
    assert import_main([str(release), "--out", str(out)]) == 0
    before = _sha(out)
    torch.manual_seed(1)
    torch.save(GPENGenerator(**TINY_GPEN).state_dict(), release)  # a different release over the same --out
    capsys.readouterr()
    monkeypatch.setattr(atomic, "open", _open_on_full_disk, raising=False)
    with pytest.raises(SystemExit) as exit_:
        import_main([str(release), "--out", str(out)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"facezoo: error: {out}: could not write ({NO_SPACE}); the previous file, if any, is unchanged\n"
    )
    assert _sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GPEN-BFR-64.pth", "gpen.ckpt"]
