"""The Ray executor: each run is a Ray task, on a local Ray instance or a cluster.

A run asks Ray for one GPU when its device is CUDA, else for as many CPUs as it uses
threads. The driver submits every run whose baseline has finished, collects records
as tasks end, and keeps the local executor's semantics: a task that dies gives an
``error`` record, one past its time budget (plus grace, counted from when it started
on a node) is cancelled with ``timeout``, one past its memory budget is stopped with
``over_memory``, and Ctrl-C or SIGTERM records the interrupted runs. Tasks report that they
started, their evaluations and why they stop to a small event actor the driver reads.

Sources are prepared (downloaded, pretrained) in the driver before any run. Caches:
each task uses the suite's cache directory when it is usable on its node (a shared file
system gives one cache for the cluster), else the node's own (``$TLBENCH_CACHE_DIR`` or
``~/.cache/tlbench``), filled on first use.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ...errors import UserError, first_line
from ..execute import RunSettings, now
from ...plan.matrix import RunSpec
from .schedule import Schedule
from .stopped import (INTERRUPTED, death_message, grace_period, interruption_message, memory_message,
                      stopped_record, timeout_message)

POLL_S = 0.2


# ---------------------------------------------------------------------- inside a task


class EventBox:
    """A Ray actor that holds what tasks report until the driver collects it."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def put(self, *event) -> None:
        self.events.append(event)

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events


_WORKER: tuple[str, object] | None = None


def _node_cache_dir(wanted: str) -> str:
    """The suite's cache directory if this node can write it, else the node's own."""
    for candidate in (wanted, os.environ.get("TLBENCH_CACHE_DIR"), str(Path.home() / ".cache" / "tlbench")):
        if not candidate:
            continue
        try:
            Path(candidate).mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return wanted


def _worker_for(settings_json: dict, modules: list[str]):
    """One tlbench Worker per Ray worker process and settings (plugins, caches)."""
    global _WORKER
    from ..execute import Worker
    from ...hashing import canonical_json
    from .local import preload

    key = canonical_json(settings_json)
    if _WORKER is None or _WORKER[0] != key:
        settings = RunSettings.from_json(settings_json)
        settings = replace(settings, cache_dir=_node_cache_dir(settings.cache_dir))
        _WORKER = (key, Worker(settings))
        preload(modules)
    return _WORKER[1]


def _watch_memory(run_id: str, limit_mb: float, events, stop: threading.Event) -> None:
    """Stop this process when its resident memory passes the budget, saying why first."""
    import psutil

    from .local import _tree_rss_mb

    pid = os.getpid()
    while not stop.wait(0.05):
        used = _tree_rss_mb(pid)
        if used > limit_mb:
            import ray

            try:
                ray.get(events.put.remote(run_id, "over_memory", {"used_mb": used}), timeout=10)
            finally:
                psutil.Process(pid).kill()


def run_task(spec_json: dict, settings_json: dict, modules: list[str], events) -> dict:
    """A Ray task: execute one run and return its record."""
    global _WORKER
    spec = RunSpec.from_json(spec_json)
    worker = _worker_for(settings_json, modules)  # before the run's clock starts
    events.put.remote(spec.run_id, "started", {"pid": os.getpid(), "at": now()})
    stop = threading.Event()
    limit = worker.settings.memory_budget_mb
    if limit is not None and not worker.settings.device.startswith("cuda"):
        threading.Thread(target=_watch_memory, args=(spec.run_id, limit, events, stop), daemon=True).start()
    try:
        record = worker.run(spec, lambda kind, payload: events.put.remote(spec.run_id, kind, payload))
    finally:
        stop.set()
    if record["status"] != "ok":
        _WORKER = None  # whatever the failure left behind does not reach the next run
    return record


# ---------------------------------------------------------------------- the driver


@dataclass
class _Task:
    spec: RunSpec
    started: float | None = None
    started_at: str = ""
    last_eval: dict = field(default_factory=dict)
    stopped: dict | None = None
    """Set when the task said it is stopping itself (over memory)."""


class RayExecutor:
    name = "ray"

    def __init__(self, settings: RunSettings, address: str | None = None, log_dir: Path | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray: Ray is not installed; pip install 'tlbench[ray]'") from None

        self.ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options = dict(include_dashboard=False, log_to_driver=False, logging_level="warning")
            try:
                # without an address, a new local instance (never a stranger's cluster)
                ray.init(address=address or "local", **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"--address: cannot connect to a Ray cluster at {address!r}: {exc}") from None
        self.settings = replace(settings, device=self._cluster_device(settings.device))
        gpu = self.settings.device.startswith("cuda")
        cpus = self.settings.threads or 1
        self._resources = {"num_gpus": 1, "num_cpus": cpus} if gpu else {"num_cpus": cpus}
        self._run = ray.remote(max_retries=0, **self._resources)(run_task)
        self._events = ray.remote(num_cpus=0)(EventBox).remote()
        from .local import driver_imports

        self._modules = driver_imports()

    def _cluster_device(self, device: str) -> str:
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if device == "auto":
            return "cuda" if gpus else "cpu"
        if device.startswith("cuda"):
            if not gpus:
                raise UserError(f"suite.device: {device!r} asked for, but the Ray cluster has no GPU")
            return "cuda"  # the GPU Ray assigns to each task
        return device

    def close(self) -> None:
        try:
            self.ray.kill(self._events)
        except Exception:  # the cluster may be gone already
            pass
        if self._started_here:
            self.ray.shutdown()

    # ------------------------------------------------------------------ preparation

    def prepare(self, sources: list[dict],
                on_preparation: Callable[[dict, float | None], None] = lambda source, seconds: None) -> None:
        """Prepare sources here, in the driver, as the inline executor does: downloads
        happen where the user ran tlbench, into the caches the user pointed at; a node
        whose cache lacks a prepared source prepares it again when a run builds it."""
        if sources:
            from .inline import InlineExecutor

            InlineExecutor(replace(self.settings, device="auto")).prepare(sources, on_preparation)

    # ------------------------------------------------------------------ runs

    def run(self, specs: list[RunSpec], on_record: Callable[[RunSpec, dict], None],
            on_event: Callable[[RunSpec, str, dict], None] = lambda spec, kind, payload: None,
            sources: list[dict] = (),
            on_preparation: Callable[[dict, float | None], None] = lambda source, seconds: None) -> None:
        self.prepare(list(sources), on_preparation)
        schedule = Schedule(specs)
        settings_json = self.settings.to_json()
        inflight: dict = {}
        by_run_id: dict[str, _Task] = {}

        def finish(ref, record: dict) -> None:
            task = inflight.pop(ref)
            by_run_id.pop(task.spec.run_id, None)
            schedule.finished(task.spec)
            on_record(task.spec, record)

        try:
            while schedule:
                while (spec := schedule.next_ready()) is not None:
                    ref = self._run.remote(spec.to_json(), settings_json, self._modules, self._events)
                    inflight[ref] = by_run_id[spec.run_id] = _Task(spec)
                ready, _ = self.ray.wait(list(inflight), num_returns=len(inflight), timeout=POLL_S)
                self._read_events(by_run_id, on_event)
                for ref in ready:
                    finish(ref, self._collect(ref, inflight[ref]))
                self._police(inflight, finish)
        except KeyboardInterrupt as interrupt:
            for ref, task in list(inflight.items()):
                self.ray.cancel(ref, force=True)
                if task.started is not None:
                    finish(ref, self._stopped(task, "error", INTERRUPTED, interruption_message(interrupt)))
            raise

    def _read_events(self, by_run_id: dict[str, _Task], on_event) -> None:
        for run_id, kind, payload in self.ray.get(self._events.drain.remote()):
            task = by_run_id.get(run_id)
            if task is None:
                continue
            if kind == "started":
                task.started, task.started_at = time.monotonic(), payload["at"]
            elif kind == "over_memory":
                task.stopped = payload
            else:
                if kind == "eval":
                    task.last_eval = payload
                on_event(task.spec, kind, payload)

    def _collect(self, ref, task: _Task) -> dict:
        """The record a finished task returned, or one saying why it has none."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            time.sleep(POLL_S)  # an over-memory notice may still be on its way
            self._read_events({task.spec.run_id: task}, lambda *args: None)
            if task.stopped is not None:
                used = task.stopped["used_mb"]
                return self._stopped(task, "over_memory", "MemoryBudgetExceeded",
                                     memory_message(self.settings, used), peak_memory_mb=used)
            if isinstance(exc, self.ray.exceptions.WorkerCrashedError):
                return self._stopped(task, "error", "WorkerDied", f"{death_message(None)} ({first_line(exc)})")
            return self._stopped(task, "error", type(exc).__name__, first_line(exc))

    def _police(self, inflight: dict, finish) -> None:
        """Cancel tasks that outlive their time budget by the grace period."""
        budget = self.settings.time_budget_s
        for ref, task in list(inflight.items()):
            if task.started is None:
                continue  # still queued for resources
            elapsed = time.monotonic() - task.started
            if elapsed > budget + grace_period(budget):
                self.ray.cancel(ref, force=True)
                finish(ref, self._stopped(task, "timeout", "TimeBudgetExceeded",
                                          timeout_message(self.settings, elapsed)))

    def _stopped(self, task: _Task, status: str, error_type: str, message: str,
                 peak_memory_mb: float | None = None) -> dict:
        wall = time.monotonic() - task.started if task.started is not None else 0.0
        return stopped_record(task.spec, self.settings, self.settings.device, status=status,
                              error_type=error_type, message=message, wall_seconds=wall,
                              started_at=task.started_at or now(), last_eval=task.last_eval,
                              peak_memory_mb=peak_memory_mb)


