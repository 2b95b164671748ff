"""The peak memory of a block: `with PeakMemory(device) as peak: ...` then `peak.mb` (bench, compare).

On CUDA the allocator's peak. On a CPU the resident set size of the process (psutil, on any OS), sampled
every 5 ms by a thread and read once more when the block ends: the process-wide `ru_maxrss` cannot be reset
between blocks.
"""

import threading

import psutil
import torch


class PeakMemory:
    """The peak memory while the block runs, in MB (`.mb`; see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.mb = device, 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            self._read()
            if self._stop.wait(0.005):
                return

    def _read(self) -> None:
        self.mb = max(self.mb, self._process.memory_info().rss / 2**20)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._read()  # a starved sampler thread still sees what the block holds at its end
