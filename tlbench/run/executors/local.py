"""The local executor: N worker processes on this machine, each run isolated.

Worker processes are started with ``spawn`` and reused across runs; after a run that
timed out, went over memory or failed on a GPU the worker is replaced, so whatever the
failure left behind (held memory, a stuck thread, a broken CUDA context) cannot touch
the next run.
The driver watches every busy worker: a worker that dies (a segfault, ``os._exit``)
gives an ``error`` record, one that outlives its time budget by the grace period is
killed (``timeout``), and one whose resident memory passes the memory budget is killed
(``over_memory``). The other runs go on. Workers ignore Ctrl-C and SIGTERM: the
driver alone stops, records the interrupted runs and kills them (see `stopped`).

Workers start when `run` is called, each importing what the driver imported while
planning (`driver_imports`) before it says it is ready: the libraries a run needs are
then loaded before its clock starts, so that a run's wall time and time budget do not
depend on whether it was its worker's first.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

import psutil

from ...errors import PluginError, UserError
from ..execute import RunSettings, now
from ...plan.matrix import RunSpec
from . import PreparationFailed, PrepareFailure
from .schedule import Schedule
from .stopped import (INTERRUPTED, death_message, grace_period, interruption_message, memory_message,
                      stopped_record, timeout_message)

POLL_S = 0.05
MAX_START_FAILURES = 3


def _die_with_driver(driver_pid: int) -> None:
    """On Linux, have the kernel kill this worker when the driver dies, even by SIGKILL,
    so no orphan keeps training (and writing to the caches) after its driver is gone."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the worker instead
        return
    if os.getppid() != driver_pid:  # the driver died before the line above
        os._exit(1)


def driver_imports() -> list[str]:
    """Third-party packages the driver imported while planning (torch, timm, the data
    libraries of the targets): what the runs will import too."""
    names = {name.partition(".")[0] for name in list(sys.modules)}
    return sorted(name for name in names if not name.startswith("_") and name not in sys.stdlib_module_names
                  and name not in ("tlbench", "ray", "pytest", "_pytest"))


def preload(modules: list[str]) -> None:
    """Import `modules` before any run, so no run's wall time or budget pays for them."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a module the driver could import but this process cannot: the run will say
            pass


def _exit_worker() -> None:
    """End a worker that was told to stop, at once: its results are sent and its cache
    files written atomically, and the interpreter's shutdown with torch loaded takes a
    second or two that the driver would wait for."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _output_to(path: str | None) -> None:
    if path:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)


def _receive_or_exit(conn) -> tuple:
    message = conn.recv()
    if message is None:
        _exit_worker()
    return message


def _worker_main(conn, settings_json: dict, device: str | None, log_path: str | None, driver_pid: int,
                 modules: list[str]) -> None:
    """A worker process: import `modules`, build a Worker, say it is ready, then execute
    what the driver sends (``("prepare", source)`` or ``("run", spec)``) until it sends
    None."""
    _die_with_driver(driver_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C and SIGTERM are the driver's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _output_to(log_path)
    try:
        preload(modules)  # first: the Worker's thread limits then reach every BLAS these load
        from ..execute import Worker

        worker = Worker(RunSettings.from_json(settings_json))
    except BaseException:
        conn.send(("fatal", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        kind, payload = _receive_or_exit(conn)
        if kind == "prepare":
            conn.send(("prepared", _prepare(worker, payload, device)))
            continue
        spec = RunSpec.from_json(payload)

        def on_event(event: str, data: dict, run_id=spec.run_id) -> None:
            conn.send(("event", run_id, event, data))

        conn.send(("record", worker.run(spec, on_event, device=device)))


def _prepare(worker, source: dict, device: str | None) -> dict | None:
    """Prepare a source; None when done, else what went wrong, for the driver."""
    try:
        worker.prepare(source, device=device)
        return None
    except Exception as exc:
        return {"type": type(exc).__name__, "message": str(exc).strip(), "user_error": isinstance(exc, UserError),
                "traceback": traceback.format_exc()}


def _spawn(context, index: int, settings_json: dict, device: str | None, log_path: str | None,
           modules: list[str]) -> tuple:
    parent, child = context.Pipe()
    process = context.Process(target=_worker_main,
                              args=(child, settings_json, device, log_path, os.getpid(), modules),
                              name=f"tlbench-worker-{index}", daemon=True)
    process.start()
    child.close()
    return process, parent


@dataclass
class _Slot:
    """One worker process and what it is doing."""

    index: int
    device: str | None
    process: mp.Process | None = None
    conn: object = None
    ready: bool = False
    start_failures: int = 0
    task: str | None = None
    """'run' or 'prepare' while busy."""
    spec: RunSpec | None = None
    source: dict | None = None
    started: float = 0.0
    started_at: str = ""
    last_eval: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    @property
    def busy(self) -> bool:
        return self.task is not None

    def assign(self, task: str, spec: RunSpec | None = None, source: dict | None = None) -> None:
        self.task, self.spec, self.source = task, spec, source
        self.started, self.started_at, self.last_eval, self.peak_rss_mb = time.monotonic(), now(), {}, 0.0

    def release(self) -> None:
        self.task, self.spec, self.source = None, None, None


class LocalExecutor:
    name = "local"

    def __init__(self, settings: RunSettings, jobs: int = 1, devices: list[str] | None = None,
                 log_dir: Path | None = None):
        self.settings = settings
        self.jobs = max(1, jobs)
        devices = devices or [None]
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._context = mp.get_context("spawn")
        self._slots = [_Slot(index=i, device=devices[i % len(devices)]) for i in range(self.jobs)]
        self._modules: list[str] = []

    # ------------------------------------------------------------------ processes

    def _log_path(self, slot: _Slot) -> str | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return str(self.log_dir / f"worker-{slot.index}.log")

    def _start(self, slot: _Slot) -> None:
        slot.process, slot.conn = _spawn(self._context, slot.index, self.settings.to_json(), slot.device,
                                         self._log_path(slot), self._modules)
        slot.ready = False

    def _kill(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            try:
                for child in psutil.Process(slot.process.pid).children(recursive=True):
                    child.kill()
            except psutil.Error:
                pass
            slot.process.kill()
        if slot.process is not None:
            slot.process.join(5)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False

    def close(self) -> None:
        """Ask idle workers to exit, kill the rest (and those still starting)."""
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive() and slot.ready and not slot.busy:
                try:
                    slot.conn.send(None)
                    slot.process.join(5)
                except (OSError, ValueError):
                    pass
            self._kill(slot)

    # ------------------------------------------------------------------ runs

    def run(self, specs: list[RunSpec], on_record: Callable[[RunSpec, dict], None],
            on_event: Callable[[RunSpec, str, dict], None] = lambda spec, kind, payload: None,
            sources: list[dict] = (),
            on_preparation: Callable[[dict, float | None], None] = lambda source, seconds: None) -> None:
        """Prepare `sources` and execute `specs` on the workers; see `tlbench.run.executors`.

        Preparations go first, one per worker, so they run in parallel; a worker that
        is free while others still prepare takes runs that need no prepared source
        (the from-scratch baselines).
        """
        schedule = Schedule(specs, list(sources))
        self._modules = driver_imports()  # what planning imported: the runs will need it too

        def dispatch(slot: _Slot) -> None:
            source = schedule.next_preparation()
            if source is not None:
                slot.assign("prepare", source=source)
                on_preparation(source, None)
                slot.conn.send(("prepare", source))
                return
            spec = schedule.next_ready()
            if spec is not None:
                slot.assign("run", spec=spec)
                slot.conn.send(("run", spec.to_json()))

        def finished(slot: _Slot, message: tuple) -> None:
            if slot.task == "prepare":
                source, error, seconds = slot.source, message[1], time.monotonic() - slot.started
                slot.release()
                if error is not None:
                    raise PreparationFailed(PrepareFailure(source, error["type"], error["message"],
                                                           error["user_error"]))
                schedule.prepared(source)
                on_preparation(source, seconds)
                return
            spec, record = slot.spec, message[1]
            slot.release()
            if not _reusable_after(record, slot.device or self.settings.device):
                self._kill(slot)  # replaced before its next run
            schedule.finished(spec)
            on_record(spec, record)

        def lost(slot: _Slot, status: str, error_type: str, message: str) -> None:
            if slot.task == "prepare":
                raise PreparationFailed(PrepareFailure(slot.source, error_type, message))
            spec = slot.spec
            record = stopped_record(spec, self.settings, slot.device, status=status, error_type=error_type,
                                    message=message, wall_seconds=time.monotonic() - slot.started,
                                    started_at=slot.started_at, last_eval=slot.last_eval,
                                    peak_memory_mb=slot.peak_rss_mb or None)
            slot.release()
            schedule.finished(spec)
            on_record(spec, record)

        def event(slot: _Slot, message: tuple) -> None:
            if message[2] == "eval":
                slot.last_eval = message[3]
            on_event(slot.spec, message[2], message[3])

        try:
            self._drive(schedule, dispatch, finished, lost, event)
        except KeyboardInterrupt as interrupt:
            for slot in self._slots:
                if slot.task == "run":
                    self._kill(slot)
                    lost(slot, "error", INTERRUPTED, interruption_message(interrupt))
            raise
        finally:
            self.close()

    # ------------------------------------------------------------------ the loop

    def _drive(self, schedule: Schedule, dispatch, finished, lost, event) -> None:
        """Hand out work to idle workers and watch busy ones until nothing is left.

        `dispatch(slot)` gives an idle, ready worker a task if one is ready to start;
        `finished(slot, message)` takes a task's result; `lost(slot, status, type,
        message)` records a task whose worker had to be stopped or died.
        """
        while schedule:
            for slot in self._slots:
                if slot.busy:
                    continue
                if slot.process is None and schedule.has_pending():
                    self._start(slot)
                if slot.ready:
                    dispatch(slot)
            self._receive(finished, lost, event)
            self._police(lost)

    def _receive(self, finished, lost, event) -> None:
        conns = {slot.conn: slot for slot in self._slots if slot.conn is not None}
        if not conns:
            time.sleep(POLL_S)
            return
        for conn in wait(list(conns), timeout=POLL_S):
            slot = conns[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._died(slot, lost)
                continue
            kind = message[0]
            if kind == "ready":
                slot.ready, slot.start_failures = True, 0
            elif kind == "fatal":
                self._kill(slot)
                last = message[1].strip().splitlines()[-1] if message[1].strip() else "unknown error"
                raise PluginError(f"worker process failed to start: {last}")
            elif kind == "event" and slot.task == "run":
                event(slot, message)
            elif kind in ("record", "prepared") and slot.busy:
                finished(slot, message)

    def _died(self, slot: _Slot, lost) -> None:
        """A worker's pipe closed: it died, in a task or before taking one."""
        process = slot.process
        if process is not None:
            process.join(1)
        code = process.exitcode if process is not None else None
        self._kill(slot)
        if slot.busy:
            lost(slot, "error", "WorkerDied", death_message(code))
            return
        slot.start_failures += 1
        if slot.start_failures > MAX_START_FAILURES:
            where = f"; see {self.log_dir}" if self.log_dir else ""
            raise RuntimeError(f"tlbench worker processes keep dying at start-up ({death_message(code)})"
                               f"{where}")

    def _police(self, lost) -> None:
        """Kill runs past their time budget (plus grace) or their memory budget."""
        budget = self.settings.time_budget_s
        for slot in self._slots:
            if slot.task != "run":
                continue
            elapsed = time.monotonic() - slot.started
            if elapsed > budget + grace_period(budget):
                self._kill(slot)
                lost(slot, "timeout", "TimeBudgetExceeded", timeout_message(self.settings, elapsed))
                continue
            if slot.process is None:
                continue
            used = _tree_rss_mb(slot.process.pid)
            slot.peak_rss_mb = max(slot.peak_rss_mb, used)
            limit = self.settings.memory_budget_mb
            if limit is not None and not (slot.device or self.settings.device).startswith("cuda") and used > limit:
                self._kill(slot)
                lost(slot, "over_memory", "MemoryBudgetExceeded", memory_message(self.settings, used))


def _reusable_after(record: dict, device: str) -> bool:
    """Whether a worker may take another run after this one. Not after a timeout (a
    plugin thread may still run) or over_memory (memory may still be held), nor after
    any failure on a GPU (a CUDA error can leave the context unusable). A Python
    exception on the CPU leaves the process sound."""
    status = record["status"]
    return status == "ok" or (status == "error" and not device.startswith("cuda"))


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a worker and the processes it started (data-loader workers)."""
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20
    except psutil.Error:
        return 0.0
