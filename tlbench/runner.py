"""Running a suite: plan, skip what the store holds, execute the rest, report.

The driver alone writes records. A run that is ok in the store is never redone; a
failed one is redone unless ``retry_failed`` is off; a run's record carries its
negative-transfer score against the baseline it was paired with.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError, first_line
from .run.execute import RunSettings
from .plan.compatibility import Plan
from .plan.matrix import RunSpec
from .run.executors import PreparationFailed
from .run.executors.stopped import INTERRUPTED
from .plan.planner import plan
from .plugins import PluginRegistry
from .progress import Progress
from .results.kinds import RUN_KINDS
from .results.records import FAILED, is_done
from .results.scores import negative_transfer
from .results.store import RecordStore
from .plan.suite import Suite


@dataclass
class RunSummary:
    planned: int = 0
    skipped: int = 0
    executed: int = 0
    ok: int = 0
    failed: list[dict] = field(default_factory=list)
    kept_failures: int = 0
    excluded: int = 0
    """Combinations the plan left out as impossible."""
    output: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.kept_failures else 0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


CPU_THREADS = 1
"""Intra-op threads of a CPU run unless ``--threads`` says otherwise. Fixed, not derived
from ``--jobs``: CPU results depend on the thread count, and must not depend on how
many runs execute at once. Use the cores with ``--jobs`` (one run per core)."""


def run_settings(suite: Suite, jobs: int = 1, device: str | None = None, threads: int | None = None,
                 executor: str = "local") -> RunSettings:
    """How this suite's runs execute: device, budgets, threads, caches, plugin paths."""
    from .run.execute import resolve_device

    requested = device or suite.device
    if executor == "ray":  # the cluster, not this machine, has the devices
        resolved = "cuda" if requested.startswith("cuda") else requested
    else:
        resolved = resolve_device(requested)
        if resolved.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UserError(f"{suite.path}: suite.device: {requested!r} asked for, but torch sees no "
                                f"CUDA device")
    if threads is None:  # on a local GPU the CPU threads only feed it: share the cores
        local_gpu = executor != "ray" and resolved.startswith("cuda")
        threads = max(1, available_cores() // max(1, jobs)) if local_gpu else CPU_THREADS
    python_path = [str(Path(suite.path).parent.resolve())]
    python_path += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return RunSettings(device=resolved, time_budget_s=suite.time_budget_s,
                       memory_budget_mb=suite.memory_budget_mb, deterministic=suite.deterministic,
                       cache_dir=str(suite.cache_dir), plugins=suite.plugins, threads=threads,
                       python_path=tuple(dict.fromkeys(python_path)))


def check_runs_something(suite: Suite, planned: Plan) -> None:
    """A suite whose every combination is left out is a mistake in the suite."""
    if planned.specs:
        return
    why = f"; e.g. {planned.exclusions[0]}" if planned.exclusions else ""
    raise UserError(f"{suite.path}: nothing to run: every combination of source, target and strategy is left "
                    f"out as impossible ({len(planned.exclusions)} reasons{why})")


def finalize(record: dict, spec: RunSpec, records: dict[str, dict]) -> dict:
    """Attempt number and negative-transfer score (paired with the same-seed baseline)."""
    previous = records.get(spec.run_id)
    record["attempt"] = (previous.get("attempt", 1) + 1) if previous else 1
    baseline = records.get(spec.baseline_run_id) if spec.baseline_run_id else None
    if baseline is not None and baseline["status"] == "ok" and record["status"] == "ok":
        record["metrics"].update(negative_transfer(record, baseline))
    return record


def make_executor(name: str, settings: RunSettings, jobs: int, registry: PluginRegistry,
                  output: Path, devices: list[str] | None = None, address: str | None = None,
                  requested_device: str = "auto", processes: list[tuple] = ()):
    if name != "ray" and address:
        raise UserError("--address: only used with --executor ray")
    if name == "inline":
        from .run.executors.inline import InlineExecutor

        return InlineExecutor(settings, registry)
    if name == "ray":
        if devices:
            raise UserError("--devices: not used with --executor ray (Ray gives each run a GPU)")
        from .run.executors.ray import RayExecutor

        return RayExecutor(settings, address=address, log_dir=output / "logs")
    from .run.executors.devices import worker_devices
    from .run.executors.local import LocalExecutor

    cuda_count = 0
    if settings.device.startswith("cuda") or any(d.startswith("cuda") for d in devices or ()):
        import torch

        cuda_count = torch.cuda.device_count()
    per_worker = worker_devices(requested_device, settings.device, devices, jobs, cuda_count)
    return LocalExecutor(settings, jobs=jobs, devices=per_worker, log_dir=output / "logs", processes=processes)


def _interrupted(record: dict) -> bool:
    return (record.get("error") or {}).get("type") == INTERRUPTED


def _sources_to_prepare(suite: Suite, todo: list[RunSpec]) -> list[dict]:
    """The source entries that runs still to do build from prepared weights."""
    needed = {spec.source.id for spec in todo if spec.init != "random"}
    return [entry.to_json() for entry in suite.sources if entry.id in needed]


def _preparation_error(suite: Suite, failure) -> UserError:
    """A source that could not be prepared, as one line naming its suite entry."""
    index = next(i for i, entry in enumerate(suite.sources) if entry.id == failure.source["id"])
    where = f"{suite.path}: sources[{index}] ({failure.source['id']})"
    message = first_line(failure.message)
    if failure.user_error:
        return UserError(f"{where}: {message}")
    return UserError(f"{where}: {failure.source['plugin']} prepare failed: {failure.error_type}: {message}")


def _started_early(suite: Suite, registry: PluginRegistry, records: dict[str, dict], executor: str,
                   jobs: int, devices: list[str] | None, address: str | None, device: str | None,
                   threads: int | None):
    """(settings, local executor with its workers started) when the store cannot hold
    every run of the suite yet, else None. Workers then start up (interpreter, torch,
    the libraries the suite's sources and targets check with) while the driver plans,
    instead of after it; with everything perhaps done already, none is started for nothing."""
    if executor != "local":
        return None
    from .plan.matrix import expand

    try:
        planned = len(expand(suite, registry).specs)
    except Exception:  # planning will say what is wrong
        return None
    if sum(is_done(record) for record in records.values()) >= planned:
        return None
    from .run.executors.local import start_processes, stop_processes

    processes = start_processes(jobs)  # they start up while torch loads here to resolve the device
    try:
        settings = run_settings(suite, jobs, device, threads, executor)
        runner = make_executor(executor, settings, jobs, registry, suite.output, devices, address,
                               requested_device=device or suite.device, processes=processes)
    except BaseException:
        stop_processes(processes)
        raise
    runner.start(warm_up=[{"kind": entry.kind, **entry.to_json()} for entry in (*suite.sources, *suite.targets)])
    return settings, runner


def run_suite(suite: Suite, registry: PluginRegistry, *, executor: str = "local", jobs: int = 1,
              devices: list[str] | None = None, address: str | None = None, retry_failed: bool = True,
              device: str | None = None, threads: int | None = None,
              log: Callable[[str], None] | None = None,
              while_running: Callable[[], None] | None = None) -> RunSummary:
    """Run every planned run that the store does not hold as done; return the summary.

    Failed runs are redone unless `retry_failed` is off; runs stopped by Ctrl-C are
    always redone. Raises KeyboardInterrupt after recording the interrupted runs.
    `while_running()` is called in a background thread once runs start executing, for
    work the driver can do while it waits (the CLI imports what its report needs).
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    created = not suite.output.exists()
    stores = {name: RecordStore(suite.output / kind.folder) for name, kind in RUN_KINDS.items()}
    records: dict[str, dict] = {}
    for store in stores.values():
        records.update(store.load_all())
        for problem in store.problems:
            log(f"tlbench: warning: {problem}")
    settings, runner = _started_early(suite, registry, records, executor, jobs, devices, address, device,
                                      threads) or (None, None)
    try:
        planned = plan(suite, registry, log)
        check_runs_something(suite, planned)
    except BaseException:
        if runner is not None:
            runner.close()
        raise
    for exclusion in planned.exclusions:
        log(f"tlbench: left out: {exclusion}")
    specs = planned.specs
    summary = RunSummary(planned=len(specs), output=suite.output, excluded=len(planned.exclusions))
    todo = []
    for spec in specs:
        record = records.get(spec.run_id)
        if is_done(record):
            summary.skipped += 1
        elif record is not None and record["status"] in FAILED and not retry_failed \
                and not _interrupted(record):
            summary.kept_failures += 1
            summary.failed.append(record)
        else:
            todo.append(spec)
    if not todo:
        if runner is not None:
            runner.close()
        return summary
    settings = settings or run_settings(suite, jobs, device, threads, executor)
    if executor == "local" and not settings.device.startswith("cuda") and \
            jobs * (settings.threads or 1) > available_cores():
        log(f"tlbench: warning: --jobs {jobs} × {settings.threads} threads per run is more than the "
            f"{available_cores()} cores here; runs will slow each other down")
    runner = runner or make_executor(executor, settings, jobs, registry, suite.output, devices, address,
                                     requested_device=device or suite.device)
    progress = Progress(len(todo), log)

    def on_record(spec: RunSpec, record: dict) -> None:
        finalize(record, spec, records)
        stores[spec.kind].write(record)
        records[spec.run_id] = record
        summary.executed += 1
        if record["status"] == "ok":
            summary.ok += 1
        else:
            summary.failed.append(record)
        progress.finished(spec, record)

    if while_running is not None:
        threading.Thread(target=while_running, name="tlbench-while-running", daemon=True).start()
    try:
        runner.run(todo, on_record, progress.event, sources=_sources_to_prepare(suite, todo))
    except PreparationFailed as exc:
        if created and summary.executed == 0:  # it holds only the workers' logs: nothing ran
            shutil.rmtree(suite.output, ignore_errors=True)
        raise _preparation_error(suite, exc.failure) from None
    finally:
        runner.close()
        progress.close()
    return summary
