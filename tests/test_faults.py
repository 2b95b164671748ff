"""Faults a run survives, and nothing already written is lost:

- Ctrl-C in the middle of a GAN batch (between its generator and discriminator steps) stops after the batch,
  saves `last.ckpt` and exits 130; the resumed run ends exactly as the uninterrupted one;
- SIGTERM saves `last.ckpt` and exits 143 (a command chain must not go on as if training had finished), and
  under `strategy=ddp_cpu` the workers end with their launcher, whether it got SIGTERM or `kill -9`;
- `last.ckpt` is always the latest state, even after the monitored metric stops improving;
- a second run into a live run's folder is refused; a full disk while checkpointing is one line and leaves
  the previous checkpoint as it was; `kill -9` during a checkpoint write leaves the previous one intact, and
  the next run removes the dead writer's temporary.
Subprocesses only where a real process boundary is the point, each with bounded time.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facezoo.train import train
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, WriteError
from helpers import TINY, LossRecorder

GAN = [*TINY, "model=gpen", "datamodule=synthetic_restore"]  # three optimizer steps per batch


def _cfg(tmp_path, data_dir, *overrides, name="run", base=GAN):
    return compose_config(overrides=[*base, *overrides], output_dir=tmp_path / name, data_dir=data_dir)


def _counter(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["state_dict"]["batch_counter"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SignalDuring:
    """Sends `signum` to this process just before the last optimizer step of training batch `batch`."""

    def __new__(cls, batch: int, signum=signal.SIGINT):
        import pytorch_lightning as pl

        class _Signal(pl.Callback):
            seen = 0

            def on_train_batch_start(self, trainer, pl_module, batch_, batch_idx):
                self.seen += 1

            def on_before_optimizer_step(self, trainer, pl_module, optimizer):
                last = trainer.optimizers[-1]
                if self.seen == batch and getattr(optimizer, "optimizer", optimizer) is last:
                    os.kill(os.getpid(), signum)

        return _Signal()


def test_ctrl_c_mid_batch_saves_after_the_batch_and_resumes_exactly(tmp_path, data_dir):
    schedule = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "test=false"]
    full = LossRecorder(keys=())
    train(_cfg(tmp_path, data_dir, *schedule, name="full"), callbacks=[full])
    assert full.counters == [1, 2, 3, 4, 5, 6]

    before = signal.getsignal(signal.SIGINT)  # Python's default; SIG_IGN under a shell's background job
    with pytest.raises(SystemExit) as stopped:
        train(_cfg(tmp_path, data_dir, *schedule, name="stopped"), callbacks=[SignalDuring(batch=4)])
    assert stopped.value.code == 130
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert _counter(last) == 4  # every step of batch 4, D included, then the stop
    assert signal.getsignal(signal.SIGINT) == before  # handlers given back

    resumed = LossRecorder(keys=())
    rcfg = _cfg(tmp_path, data_dir, *schedule, f"ckpt_path={last.parents[1]}", name="resumed")
    train(rcfg, callbacks=[resumed])
    assert resumed.counters == [5, 6]
    assert [list(v) for v in resumed.logs] == [list(v) for v in full.logs[4:]]
    for key, value in full.final_state.items():
        torch.testing.assert_close(resumed.final_state[key], value, rtol=0, atol=0, msg=key)


def test_last_checkpoint_is_the_latest_state_when_the_metric_gets_worse(tmp_path, data_dir):
    import pytorch_lightning as pl

    class Worsening(pl.Callback):  # a monitored metric that is best at the first validation
        def on_validation_epoch_end(self, trainer, pl_module):
            pl_module.log("val/worse", -float(trainer.current_epoch))

    overrides = ["trainer.max_epochs=3", "trainer.limit_train_batches=2", "test=false",
                 "callbacks.model_checkpoint.monitor=val/worse", "callbacks.model_checkpoint.mode=max"]
    train(_cfg(tmp_path, data_dir, *overrides, base=TINY), callbacks=[Worsening()])
    folder = tmp_path / "run" / "checkpoints"
    assert _counter(folder / "best.ckpt") == 2 and _counter(folder / "last.ckpt") == 6


def test_a_live_runs_folder_is_refused_and_survives(tmp_path, data_dir):
    run = tmp_path / "run"
    holder = subprocess.Popen(  # another live run holding the folder
        [sys.executable, "-c", "import sys, time; from facezoo.utils.run_folder import claim_run_folder; "
         "claim_run_folder(sys.argv[1]); print('held', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"the other run's checkpoint")
        in_use = rf"{run}: the run folder is in use by a live run \(pid {holder.pid}\)"
        with pytest.raises(ConfigError, match=in_use):
            train(_cfg(tmp_path, data_dir, base=TINY))
        assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"the other run's checkpoint"
        assert not (run / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    train(_cfg(tmp_path, data_dir, "test=false", base=TINY))  # the lock went with its process
    assert _counter(run / "checkpoints" / "last.ckpt") == 3


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(tmp_path, data_dir, monkeypatch):
    cfg = _cfg(tmp_path, data_dir, "test=false", base=TINY)
    train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = _digest(last)

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"\0" * 1000)  # part of the file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    resumed = _cfg(tmp_path, data_dir, "test=false", "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'run'}",
                   base=TINY)
    with pytest.raises(WriteError, match=r"last.ckpt: could not write \(No space left on device\)"):
        train(resumed)
    monkeypatch.setattr(torch, "save", real_save)
    assert _digest(last) == before and not list(last.parent.glob(".*tmp-*"))


_WRITE_FOREVER = """
import sys, torch
from facezoo.utils.atomic import atomic_file
state = {"w": torch.randn(64, 1024, 1024)}  # 256 MB: the write takes long enough to be killed in it
while True:
    with atomic_file(sys.argv[1]) as f:
        torch.save(state, f)
"""


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    from facezoo.utils.atomic import remove_stale_temporaries

    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    torch.save({"batch": torch.tensor(7)}, path)
    before = _digest(path)
    writer = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(path)])
    temporary = path.with_name(f".last.ckpt.tmp-{writer.pid}")
    deadline = time.time() + 60
    while not (temporary.exists() and temporary.stat().st_size > 1_000_000) and time.time() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert temporary.exists() and _digest(path) == before  # killed mid-write: the old file untouched
    assert remove_stale_temporaries(tmp_path) == [temporary] and not temporary.exists()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_ddp_cpu_workers_end_with_their_launcher(tmp_path, data_dir, signum):
    run = tmp_path / "run"
    args = [*TINY, f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", "strategy=ddp_cpu",
            "trainer.max_epochs=1000", f"hydra.run.dir={run}", "callbacks.sample_grid=null"]
    launcher = subprocess.Popen([sys.executable, "-m", "facezoo.train", *args], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    workers = [p for p in _children(launcher.pid) if _alive(p)]
    launcher.send_signal(signum)
    output, _ = launcher.communicate(timeout=120)
    assert len(workers) >= 2, output[-3000:]
    deadline = time.time() + 30
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "workers outlived their launcher"
    stopped = _counter(last)
    if signum == signal.SIGTERM:
        assert launcher.returncode == 143 and "saved a resumable checkpoint" in output, output[-3000:]
    time.sleep(2)  # nothing writes any more
    assert _counter(last) == stopped and not list(last.parent.glob(".*tmp-*"))


def test_sigterm_saves_exits_143_and_the_run_resumes(tmp_path, data_dir):
    run = tmp_path / "run"
    common = [*TINY, f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", "test=false"]
    args = [*common, "trainer.max_epochs=1000", f"hydra.run.dir={run}", "callbacks.sample_grid=null"]
    proc = subprocess.Popen([sys.executable, "-m", "facezoo.train", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # training has started once the first epoch's checkpoint exists
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "saved a resumable checkpoint" in output, output[-2000:]
    counter = _counter(last)
    assert counter >= 3

    resumed = [f"ckpt_path={run}", f"trainer.max_epochs={counter // 3 + 1}", "test=false"]
    train(_cfg(tmp_path, data_dir, *resumed, name="resumed", base=TINY))
    assert _counter(tmp_path / "resumed" / "checkpoints" / "last.ckpt") > counter
