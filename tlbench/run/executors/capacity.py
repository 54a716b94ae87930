"""How many local worker processes a suite gets: ``--jobs auto``, the default.

On GPUs, one worker per GPU the workers may use (``--devices``, else every visible GPU
when the suite asks for ``auto`` or ``cuda``, else the one GPU it names). On the CPU,
one worker per core this process may run on (a CPU run uses one thread), as long as
that many runs fit in the memory available: workers × the memory one run needs must
not exceed what the machine (or its cgroup, under Docker, Kubernetes or Slurm) has
free. What one run needs is the suite's ``memory_budget_mb`` (a CPU run is killed past
it), else the largest peak resident memory of the runs already recorded in the result
directory, else `DEFAULT_RUN_MEMORY_MB`. Never more workers than runs to do.

The choice never changes a record: a CPU run's thread count is fixed, not derived from
the number of workers (see `tlbench.runner.CPU_THREADS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN_MEMORY_MB = 2048.0
"""What one CPU run is assumed to need when neither a budget nor a recorded run says:
a worker with torch and a small model resides in about 0.5-1 GB; twice that leaves
room for larger models and data."""

_CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Workers:
    """How many workers, and why (for the progress header)."""

    count: int
    why: str

    def __str__(self) -> str:
        return f"{self.count} worker{'s' if self.count != 1 else ''} ({self.why})"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which Slurm and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _read_bytes(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) is None


def _cgroup_free_bytes() -> int | None:
    """What this process's cgroup may still allocate, when the cgroup has a limit
    (containers and batch schedulers cap memory there, below what the machine has)."""
    for limit, usage in (("memory.max", "memory.current"),  # cgroup v2
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):  # v1
        cap, used = _read_bytes(_CGROUP / limit), _read_bytes(_CGROUP / usage)
        if cap is not None and used is not None and cap < 2**60:  # v1 says "no limit" with a huge number
            return max(0, cap - used)
    return None


def available_memory_mb() -> float:
    """Memory free for new processes: the machine's available memory, or less under a
    cgroup limit."""
    import psutil

    free = psutil.virtual_memory().available
    cgroup = _cgroup_free_bytes()
    return min(free, cgroup if cgroup is not None else free) / 2**20


def recorded_run_memory_mb(records: list[dict]) -> float | None:
    """The largest peak resident memory of the recorded CPU runs, if any recorded one."""
    peaks = [record["metrics"].get("peak_memory_mb") for record in records
             if str((record.get("provenance") or {}).get("device", "")).startswith("cpu")]
    peaks = [peak for peak in peaks if isinstance(peak, (int, float)) and peak > 0]
    return max(peaks) if peaks else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def gpu_workers(devices: int, runs: int) -> Workers:
    """One worker per GPU the workers may use, no more than `runs`."""
    count = max(1, min(devices, runs))
    why = f"auto: {_plural(devices, 'GPU')}" + (f"; {_plural(runs, 'run')} to do" if runs < devices else "")
    return Workers(count, why)


def cpu_workers(cores: int, run_memory_mb: float, memory_from: str, free_mb: float, runs: int) -> Workers:
    """One worker per core, as many as fit in `free_mb` at `run_memory_mb` each, and no
    more than `runs`. `memory_from` says where `run_memory_mb` came from."""
    fit = max(1, int(free_mb // run_memory_mb))
    count = max(1, min(cores, fit, runs))
    memory = f"{run_memory_mb:,.0f} MB per run {memory_from}, {free_mb / 1024:.1f} GB free"
    if count == runs and runs < min(cores, fit):
        return Workers(count, f"auto: {_plural(cores, 'core')}; {_plural(runs, 'run')} to do")
    if fit < cores:
        return Workers(count, f"auto: {_plural(cores, 'core')}; memory for {fit}: {memory}")
    return Workers(count, f"auto: {_plural(cores, 'core')}; {memory}")


def cpu_run_memory(memory_budget_mb: float | None, records: list[dict]) -> tuple[float, str]:
    """What one CPU run needs, and where that figure comes from."""
    if memory_budget_mb is not None:
        return float(memory_budget_mb), "by the suite's memory budget"
    recorded = recorded_run_memory_mb(records)
    if recorded is not None:
        return recorded, "by the largest recorded run"
    return DEFAULT_RUN_MEMORY_MB, "assumed (no memory budget, no recorded run)"
