"""Records of runs that an executor stopped from outside their worker.

A worker that died (a segfault, ``os._exit``), was killed past its time or memory
budget, or was interrupted cannot write its own record; the driver writes one for it
with what it saw: the reason, the wall time, the peak memory it measured, and the
metrics of the last evaluation the run reported before it stopped.

Stopping the driver: Ctrl-C (SIGINT) raises `KeyboardInterrupt` in it, and SIGTERM,
which Slurm, Kubernetes and ``kill`` send, raises `Terminated`, a `KeyboardInterrupt`,
so that both take the same path: the executor records the runs in progress as
interrupted, kills its workers and re-raises; the command exits with
`Terminated.exit_code` (143, 128 + SIGTERM, the code a shell gives a process SIGTERM
ended) or 130 (128 + SIGINT). Workers ignore both signals: a scheduler that signals the
whole process group must not kill a run before the driver has recorded it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..execute import RunSettings, last_validation, now, record_spec
from ...plan.matrix import RunSpec
from ...provenance import provenance
from ...results.kinds import run_kind
from ...results.records import new_record

INTERRUPTED = "Interrupted"
"""Error type of a run stopped by Ctrl-C or SIGTERM: redone by the next run even with --no-retry."""


class Terminated(KeyboardInterrupt):
    """SIGTERM received by the driver: handled like Ctrl-C, with its own exit code."""

    exit_code = 128 + signal.SIGTERM

    def __init__(self) -> None:
        super().__init__("terminated by SIGTERM")


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C: what a shell reports for a process the signal ended."""
    return getattr(interrupt, "exit_code", 128 + signal.SIGINT)


def interruption_message(interrupt: KeyboardInterrupt) -> str:
    """What an interrupted run's record says stopped it."""
    if isinstance(interrupt, Terminated):
        return "stopped by SIGTERM (a scheduler or `kill` ended the suite)"
    return "interrupted by the user (Ctrl-C)"


@contextmanager
def sigterm_as_interrupt():
    """Within this block SIGTERM raises `Terminated` in the main thread. The first one
    only: later ones are ignored, so that recording the interrupted runs is not cut
    short (SIGKILL still ends the driver; its workers die with it)."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def terminate(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def grace_period(time_budget_s: float) -> float:
    """How long past its budget a run may take to stop by itself before it is killed."""
    return min(60.0, 5.0 + 0.05 * time_budget_s)


def stopped_record(spec: RunSpec, settings: RunSettings, device: str | None, *, status: str,
                   error_type: str, message: str, wall_seconds: float, started_at: str,
                   last_eval: dict | None = None, peak_memory_mb: float | None = None) -> dict:
    last_eval = dict(last_eval or {})
    metrics: dict = {"wall_seconds": wall_seconds, "peak_memory_mb": peak_memory_mb}
    metrics.update(last_validation(last_eval))
    prov = provenance(device or settings.device)
    prov.update(deterministic=settings.deterministic, threads=settings.threads,
                time_budget_s=settings.time_budget_s, memory_budget_mb=settings.memory_budget_mb)
    return new_record(record_spec(spec), spec.run_id, status, metrics=metrics,
                      details={"last_eval": last_eval} if last_eval else {}, provenance=prov,
                      error={"type": error_type, "message": message, "traceback": None},
                      started_at=started_at, finished_at=now(), kind=spec.kind,
                      task=spec.task if run_kind(spec.kind).scored_by_task else None)


def death_message(code: int | None) -> str:
    """Why a worker process ended, from its exit code."""
    if code is None:
        return "worker process died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {code} in the middle of the run"


def timeout_message(settings: RunSettings, elapsed: float) -> str:
    return (f"time budget of {settings.time_budget_s:g} s exceeded; the run did not stop by itself "
            f"and was killed after {elapsed:.1f} s")


def memory_message(settings: RunSettings, used_mb: float) -> str:
    return (f"memory budget of {settings.memory_budget_mb:g} MB exceeded (resident {used_mb:.0f} MB); "
            f"the run was killed")
