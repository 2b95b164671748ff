"""What `StopOnSignal` and `launched` decide, without processes (whole runs stopped by real signals:
tests/test_faults.py): a second Ctrl-C aborts only after a pause, worker failures reach the launcher as the
same exit code or the same one-line error."""

import signal
from types import SimpleNamespace

import pytest
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

from facezoo.callbacks import stopping
from facezoo.callbacks.stopping import Interrupted, StopOnSignal, launched
from facezoo.utils.errors import FacezooError


def test_a_second_ctrl_c_aborts_only_after_a_pause(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: now[0])
    stop = StopOnSignal(str(tmp_path))
    stop._notice(signal.SIGINT, None)
    assert stop.signum == signal.SIGINT
    now[0] += 0.5
    stop._notice(signal.SIGINT, None)  # the same Ctrl-C delivered twice (terminal and launcher): ignored
    stop._notice(signal.SIGTERM, None)
    now[0] += stopping.ABORT_AFTER_S
    with pytest.raises(KeyboardInterrupt):
        stop._notice(signal.SIGINT, None)


def _spawning_trainer():
    return SimpleNamespace(strategy=SimpleNamespace(launcher=_MultiProcessingLauncher(SimpleNamespace())))


def test_workers_stopped_by_a_signal_end_the_launcher_with_its_code():
    with pytest.raises(Interrupted) as stopped, launched(_spawning_trainer()):
        raise ProcessExitedException("process 0 terminated with exit code 143", 0, 1234, 143)
    assert stopped.value.code == 143
    with pytest.raises(ProcessExitedException), launched(_spawning_trainer()):  # a crash stays a crash
        raise ProcessExitedException("process 0 terminated with signal SIGSEGV", 0, 1234, -11, "SIGSEGV")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the forwarding handlers are gone


def test_bad_input_in_a_worker_is_the_same_one_line_error():
    traceback = (
        "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nfacezoo.utils.errors.ConfigError: datamodule.batch_size=8: too big\n'
    )
    one_line = r"^datamodule.batch_size=8: too big$"
    with pytest.raises(FacezooError, match=one_line), launched(_spawning_trainer()):
        raise ProcessRaisedException(traceback, 1, 1234)
    with pytest.raises(ProcessRaisedException), launched(_spawning_trainer()):
        raise ProcessRaisedException("\n\nTraceback ...\nZeroDivisionError: division by zero\n", 1, 1234)
