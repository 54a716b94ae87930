"""Time and memory budgets of one run, as seen from inside the run.

The training engine calls `Budget.check()` at every step, so a run over budget stops
at the next step boundary with the metrics of its last completed evaluation. The
executor enforces the same limits from outside (it kills a worker that does not
return), so a plugin stuck in a C call or a sleep cannot outlive its budget.
"""

from __future__ import annotations

import resource
import threading
import time

import psutil


class BudgetExceeded(Exception):
    status = "error"


class TimeBudgetExceeded(BudgetExceeded):
    status = "timeout"


class MemoryBudgetExceeded(BudgetExceeded):
    status = "over_memory"


def rss_mb(pid: int | None = None) -> float:
    process = psutil.Process(pid) if pid else psutil.Process()
    return process.memory_info().rss / 2**20


class MemorySampler:
    """Peak resident memory of this process during a run, sampled in a thread.

    `ru_maxrss` is exact but covers the whole life of a reused worker; it is used when
    the run itself raised the high-water mark, the sampled peak otherwise.
    """

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._maxrss_before = 0.0

    def __enter__(self) -> "MemorySampler":
        self._maxrss_before = _maxrss_mb()
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, name="tlbench-memory", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
        maxrss = _maxrss_mb()
        if maxrss > self._maxrss_before:
            self.peak_mb = max(self.peak_mb, maxrss)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Budget:
    """The limits of one run and a cheap `check()` for step boundaries."""

    def __init__(self, time_budget_s: float, memory_budget_mb: float | None = None,
                 device: str = "cpu", sampler: MemorySampler | None = None):
        self.time_budget_s = time_budget_s
        self.memory_budget_mb = memory_budget_mb
        self.device = device
        self.sampler = sampler
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def peak_memory_mb(self) -> float | None:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return self.sampler.peak_mb if self.sampler else None

    def check(self) -> None:
        if self.elapsed() > self.time_budget_s:
            raise TimeBudgetExceeded(f"time budget of {self.time_budget_s:g} s exceeded")
        if self.memory_budget_mb is not None:
            peak = self.peak_memory_mb()
            if peak is not None and peak > self.memory_budget_mb:
                raise MemoryBudgetExceeded(
                    f"memory budget of {self.memory_budget_mb:g} MB exceeded (peak {peak:.0f} MB)")
