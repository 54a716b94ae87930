"""The local executor: N worker processes on this machine, each run isolated.

A worker process is reused across runs until one of its runs goes wrong; then it is
killed and replaced. The driver watches every running worker: a worker that dies
(a segfault, ``os._exit``) gives an ``error`` record, one that outlives its time budget
by the grace period is killed (``timeout``), and one whose resident memory passes the
memory budget is killed (``over_memory``). The other runs go on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

import psutil

from ..execute import RunSettings, now, record_spec
from ..matrix import RunSpec
from ..provenance import provenance
from ..records import new_record
from .schedule import Schedule

POLL_S = 0.1


def grace_period(time_budget_s: float) -> float:
    """How long past its budget a worker may take to stop by itself before it is killed."""
    return min(60.0, 2.0 + 0.05 * time_budget_s)


def _worker_main(conn, settings_json: dict, device: str | None, log_path: str | None) -> None:
    """Entry point of a worker process: build a Worker, then run specs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    try:
        from ..execute import Worker

        worker = Worker(RunSettings.from_json(settings_json))
    except BaseException:
        conn.send(("fatal", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        message = conn.recv()
        if message is None:
            return
        spec = RunSpec.from_json(message)

        def on_event(kind: str, payload: dict, run_id=spec.run_id) -> None:
            conn.send(("event", run_id, kind, payload))

        conn.send(("record", worker.run(spec, on_event, device=device)))


@dataclass
class _Slot:
    device: str | None
    process: mp.Process | None = None
    conn: object = None
    spec: RunSpec | None = None
    started: float = 0.0
    started_at: str = ""
    last_eval: dict = field(default_factory=dict)
    ready: bool = False
    start_failures: int = 0


class LocalExecutor:
    name = "local"

    def __init__(self, settings: RunSettings, jobs: int = 1, devices: list[str] | None = None,
                 log_dir: Path | None = None):
        self.settings = settings
        self.jobs = max(1, jobs)
        self.devices = devices or [None]
        self.log_dir = log_dir
        self._context = mp.get_context("spawn")
        self._slots = [_Slot(device=self.devices[i % len(self.devices)]) for i in range(self.jobs)]

    # ------------------------------------------------------------------ processes

    def _start(self, slot: _Slot, index: int) -> None:
        parent, child = self._context.Pipe()
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = str(self.log_dir / f"worker-{index}.log")
        slot.process = self._context.Process(
            target=_worker_main, args=(child, self.settings.to_json(), slot.device, log),
            name=f"tlbench-worker-{index}", daemon=True)
        slot.process.start()
        child.close()
        slot.conn, slot.ready = parent, False

    def _kill(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            try:
                for child in psutil.Process(slot.process.pid).children(recursive=True):
                    child.kill()
            except psutil.Error:
                pass
            slot.process.kill()
            slot.process.join(5)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False

    def close(self) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive() and slot.spec is None:
                try:
                    slot.conn.send(None)
                    slot.process.join(5)
                except (OSError, BrokenPipeError):
                    pass
            self._kill(slot)

    # ------------------------------------------------------------------ the loop

    def run(self, specs: list[RunSpec], on_record: Callable[[RunSpec, dict], None],
            on_event: Callable[[RunSpec, str, dict], None] = lambda spec, kind, payload: None) -> None:
        schedule = Schedule(specs)
        try:
            for index, slot in enumerate(self._slots[:len(specs)]):
                self._start(slot, index)
            while schedule:
                self._dispatch(schedule)
                self._receive(schedule, on_record, on_event)
                self._police(schedule, on_record)
        except KeyboardInterrupt:
            for slot in self._slots:
                if slot.spec is not None:
                    spec = slot.spec
                    self._kill(slot)
                    on_record(spec, self._failure(spec, slot, "error", "KeyboardInterrupt",
                                                  "interrupted by the user (Ctrl-C)"))
                    slot.spec = None
            raise
        finally:
            self.close()

    def _dispatch(self, schedule: Schedule) -> None:
        for index, slot in enumerate(self._slots):
            if slot.spec is not None:
                continue
            if slot.process is None:
                if not schedule.pending:
                    continue
                self._start(slot, index)
            if not slot.ready:
                continue
            spec = schedule.next_ready()
            if spec is None:
                return
            slot.spec, slot.started, slot.started_at, slot.last_eval = spec, time.monotonic(), now(), {}
            slot.conn.send(spec.to_json())

    def _receive(self, schedule, on_record, on_event) -> None:
        conns = {slot.conn: slot for slot in self._slots if slot.conn is not None}
        for conn in wait(list(conns), timeout=POLL_S):
            slot = conns[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                if slot.spec is None:  # died before taking a run: restart it, a few times
                    self._kill(slot)
                    slot.start_failures += 1
                    if slot.start_failures > 3:
                        raise RuntimeError("tlbench worker processes keep dying at start-up; "
                                           "see the worker logs") from None
                continue  # died during a run: _police records it
            kind = message[0]
            if kind == "ready":
                slot.ready = True
            elif kind == "event" and slot.spec is not None:
                if message[2] == "eval":
                    slot.last_eval = message[3]
                on_event(slot.spec, message[2], message[3])
            elif kind == "record" and slot.spec is not None:
                spec, slot.spec = slot.spec, None
                schedule.finished(spec)
                on_record(spec, message[1])
            elif kind == "fatal":
                slot.last_eval = {"fatal": message[1]}
                self._fail_worker_start(slot, schedule, message[1])

    def _fail_worker_start(self, slot, schedule, tb: str) -> None:
        """A worker that cannot even start (a broken plugin in strict mode): a usage error."""
        self._kill(slot)
        from ..errors import PluginError

        last = tb.strip().splitlines()[-1] if tb.strip() else "unknown error"
        raise PluginError(f"worker process failed to start: {last}")

    def _police(self, schedule: Schedule, on_record) -> None:
        for slot in self._slots:
            spec = slot.spec
            if spec is None:
                continue
            elapsed = time.monotonic() - slot.started
            failure = None
            if slot.process is None or not slot.process.is_alive():
                code = slot.process.exitcode if slot.process is not None else None
                failure = ("error", "WorkerDied", _death_message(code))
            elif elapsed > self.settings.time_budget_s + grace_period(self.settings.time_budget_s):
                failure = ("timeout", "TimeBudgetExceeded",
                           f"time budget of {self.settings.time_budget_s:g} s exceeded; "
                           f"the worker did not stop and was killed after {elapsed:.1f} s")
            elif self.settings.memory_budget_mb is not None and not _on_cuda(slot, self.settings):
                used = _tree_rss_mb(slot.process.pid)
                if used > self.settings.memory_budget_mb:
                    failure = ("over_memory", "MemoryBudgetExceeded",
                               f"memory budget of {self.settings.memory_budget_mb:g} MB exceeded "
                               f"(resident {used:.0f} MB); the worker was killed")
                    slot.last_eval = {**slot.last_eval, "_peak_memory_mb": used}
            if failure is None:
                continue
            self._kill(slot)
            slot.spec = None
            schedule.finished(spec)
            on_record(spec, self._failure(spec, slot, *failure))

    def _failure(self, spec: RunSpec, slot: _Slot, status: str, kind: str, message: str) -> dict:
        last_eval = {k: v for k, v in slot.last_eval.items() if not k.startswith("_")}
        metrics = {"wall_seconds": time.monotonic() - slot.started,
                   "peak_memory_mb": slot.last_eval.get("_peak_memory_mb")}
        if "val_accuracy" in last_eval:
            metrics["val_accuracy"] = last_eval["val_accuracy"]
        prov = provenance(slot.device or self.settings.device)
        prov.update(deterministic=self.settings.deterministic, time_budget_s=self.settings.time_budget_s,
                    memory_budget_mb=self.settings.memory_budget_mb)
        return new_record(record_spec(spec), spec.run_id, status, metrics=metrics,
                          details={"last_eval": last_eval} if last_eval else {}, provenance=prov,
                          error={"type": kind, "message": message, "traceback": None},
                          started_at=slot.started_at, finished_at=now())


def _on_cuda(slot: _Slot, settings: RunSettings) -> bool:
    device = slot.device or settings.device
    return device.startswith("cuda")


def _tree_rss_mb(pid: int) -> float:
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


def _death_message(code: int | None) -> str:
    if code is None:
        return "worker process died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {code} in the middle of the run"
