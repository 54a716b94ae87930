"""Running a suite: plan → schedule → execute; the command then reports.

1. plan: check the suite and give every run its identity (`plan.planner.plan`);
2. schedule: leave out what the store holds as done (`what_to_run`): a run that is ok
   in the store is never redone, a failed one is redone unless ``retry_failed`` is off,
   an interrupted one always;
3. execute: size and open an executor for the runs left (`open_executor`: the device,
   ``--jobs auto``, threads) and run them, writing each record as it comes back with its
   negative-transfer score against the baseline it was paired with (`execute`), and the
   files a record refers to (saved predictions) before it;
4. for a suite with searches (`plan.search`), once the trials are recorded: the finals
   of the configurations they chose, and the runs paired with a searched baseline,
   scheduled and executed the same way.

The driver alone writes records. What happens in worker processes, and when they
start, is the executor's business (`tlbench.run.executors`).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .errors import UserError, first_line
from .plan.compatibility import Plan
from .plan.matrix import RunSpec
from .plan.planner import plan
from .plan.search import choose_finals
from .plan.suite import Suite
from .plugins import PluginRegistry
from .progress import PreparationTimes, Progress
from .results.kinds import RUN_KINDS
from .results.predictions import write_attachments
from .results.records import FAILED, is_done
from .results.multitask import compare_with_single_task
from .results.scores import compared_with, negative_transfer
from .results.store import RecordStore
from .run.execute import RunSettings
from .run.executors import PreparationFailed
from .run.executors.capacity import Workers, available_cores
from .run.executors.stopped import INTERRUPTED


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
    unchosen: int = 0
    """Searched cells where no configuration could be chosen (their finals did not run)."""
    output: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.kept_failures or self.unchosen else 0

    def absorb(self, other: "RunSummary") -> None:
        """Count the runs of a later stage (finals of searches) in this summary."""
        self.planned += other.planned
        self.skipped += other.skipped
        self.kept_failures += other.kept_failures
        self.failed += other.failed


@dataclass(frozen=True)
class ExecutionOptions:
    """How the user asked the runs to execute (the command line's flags)."""

    executor: str = "local"
    jobs: int | None = None
    """Local worker processes; None is ``--jobs auto`` (see `executors.capacity`)."""
    devices: list[str] | None = None
    address: str | None = None
    device: str | None = None
    threads: int | None = None


CPU_THREADS = 1
"""Intra-op threads of a CPU run unless ``--threads`` says otherwise. Fixed, not derived
from ``--jobs``: CPU results depend on the thread count, and must not depend on how
many runs execute at once. Use the cores with ``--jobs`` (one run per core)."""


def run_suite(suite: Suite, registry: PluginRegistry, *, executor: str = "local", jobs: int | None = None,
              devices: list[str] | None = None, address: str | None = None, retry_failed: bool = True,
              device: str | None = None, threads: int | None = None,
              log: Callable[[str], None] | None = None) -> RunSummary:
    """Run every planned run that the store does not hold as done; return the summary.

    Raises KeyboardInterrupt (`Terminated` for SIGTERM) after recording the runs it
    interrupted.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    options = ExecutionOptions(executor, jobs, devices, address, device, threads)
    check_options(options)
    stores, records = open_stores(suite.output, log, suite.cache_dir)
    device = resolved_device(suite, options)
    planned = plan(suite, registry, log, device=device)
    check_runs_something(suite, planned)
    for exclusion in planned.exclusions:
        log(f"tlbench: left out: {exclusion}")
    todo, summary = what_to_run(planned.specs, records, retry_failed, len(planned.exclusions))
    summary.output = suite.output
    later = [spec for spec in todo if spec.kind == "multitask"]  # after their single-task runs
    todo = [spec for spec in todo if spec.kind != "multitask"]
    if todo:
        execute(suite, registry, todo, options, device, stores, records, summary, log)
    if later:
        execute(suite, registry, [with_references(spec, records) for spec in later], options, device, stores,
                records, summary, log)
    if planned.waiting:  # searches: their finals, and the runs paired with a searched baseline
        finals, problems = choose_finals(planned, records)
        for problem in problems:
            log(f"tlbench: search: {problem}")
        summary.unchosen += len(problems)
        more, after = what_to_run(finals, records, retry_failed)
        summary.absorb(after)
        if more:
            log(f"tlbench: searches chose their configurations; {_runs(len(more))} to do with them")
            execute(suite, registry, more, options, device, stores, records, summary, log)
    return summary


# ---------------------------------------------------------------------- plan and schedule


def open_stores(output: Path, log: Callable[[str], None],
                cache_dir: Path | None = None) -> tuple[dict[str, RecordStore], dict[str, dict]]:
    """The record store of each run kind, and every record they hold by run id; an
    unreadable record is reported (and its run redone). Paths under the suite's cache
    directory are recorded relative to it, wherever the suite put it."""
    cache_dirs = (Path(cache_dir),) if cache_dir is not None else ()
    stores = {name: RecordStore(output / kind.folder, cache_dirs=cache_dirs) for name, kind in RUN_KINDS.items()}
    records: dict[str, dict] = {}
    for store in stores.values():
        records.update(store.load_all())
        for problem in store.problems:
            log(f"tlbench: warning: {problem}")
    return stores, records


def check_runs_something(suite: Suite, planned: Plan) -> None:
    """A suite whose every combination is left out is a mistake in the suite."""
    if planned.specs:
        return
    why = f"; e.g. {planned.exclusions[0]}" if planned.exclusions else ""
    raise UserError(f"{suite.path}: nothing to run: every combination of source, target and strategy is left "
                    f"out as impossible ({len(planned.exclusions)} reasons{why})")


def _interrupted(record: dict) -> bool:
    return (record.get("error") or {}).get("type") == INTERRUPTED


def what_to_run(specs: list[RunSpec], records: dict[str, dict], retry_failed: bool,
                excluded: int = 0) -> tuple[list[RunSpec], RunSummary]:
    """The planned runs still to execute, in plan order, and the summary so far."""
    summary = RunSummary(planned=len(specs), excluded=excluded)
    todo = []
    for spec in specs:
        record = records.get(spec.run_id)
        if is_done(record):
            summary.skipped += 1
        elif record is not None and record["status"] in FAILED and not retry_failed and not _interrupted(record):
            summary.kept_failures += 1
            summary.failed.append(record)
        else:
            todo.append(spec)
    return todo, summary


# ---------------------------------------------------------------------- execute


def execute(suite: Suite, registry: PluginRegistry, todo: list[RunSpec], options: ExecutionOptions, device: str,
            stores: dict[str, RecordStore], records: dict[str, dict], summary: RunSummary,
            log: Callable[[str], None]) -> None:
    """Execute `todo` on an executor sized for it; each record is finalised, written and
    counted in `summary` as it comes back. `device`: the resolved one (`resolved_device`)."""
    created = not suite.output.exists()
    settings, executor, where = open_executor(suite, registry, todo, options, device, list(records.values()), log)
    progress = Progress(len(todo), log, header=f"tlbench: {_runs(len(todo))} to do, {where}",
                        preparation_times=PreparationTimes(suite.cache_dir, settings.device))

    def on_record(spec: RunSpec, record: dict) -> None:
        finalize(record, spec, records)
        write_attachments(record, suite.output)  # saved predictions, before the record naming them
        stores[spec.kind].write(record)
        records[spec.run_id] = record
        summary.executed += 1
        if record["status"] == "ok":
            summary.ok += 1
        else:
            summary.failed.append(record)
        progress.finished(spec, record)

    try:
        executor.run(todo, on_record, progress.event, sources=_sources_to_prepare(suite, registry, todo),
                     on_preparation=progress.preparation)
    except PreparationFailed as exc:
        if created and summary.executed == 0:  # it holds only the workers' logs: nothing ran
            shutil.rmtree(suite.output, ignore_errors=True)
        raise _preparation_error(suite, exc.failure) from None
    finally:
        executor.close()
        progress.close()


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def with_references(spec: RunSpec, records: dict[str, dict]) -> RunSpec:
    """A multi-task run with its members' single-task validation metrics, which its
    checkpoint selection normalises by (the runs it is compared with, finished by now)."""
    references = {}
    for role, stl, _ in spec.members:
        record = records.get(stl) if stl else None
        if record is not None and record["status"] == "ok":
            references[role] = {"run_id": stl, "val": {key: value for key, value in record["metrics"].items()
                                                       if key.startswith("val_") and value is not None}}
    return replace(spec, references=references)


def finalize(record: dict, spec: RunSpec, records: dict[str, dict]) -> dict:
    """Attempt number, negative-transfer score (paired with the same-seed baseline) and
    the difference to each run it is compared with (`RunSpec.paired`); for a multi-task
    run, its comparison with each member's single-task and from-scratch runs."""
    previous = records.get(spec.run_id)
    record["attempt"] = (previous.get("attempt", 1) + 1) if previous else 1
    if record["status"] != "ok":
        return record
    if spec.kind == "multitask":
        return _with_member_comparisons(record, spec, records)
    baseline = records.get(spec.baseline_run_id) if spec.baseline_run_id else None
    if baseline is not None and baseline["status"] == "ok":
        record["metrics"].update(negative_transfer(record, baseline))
    others = {plugin: records[run_id] for plugin, run_id in spec.paired
              if run_id in records and records[run_id]["status"] == "ok"}
    record["metrics"].update(compared_with(record, others))
    return record


def _with_member_comparisons(record: dict, spec: RunSpec, records: dict[str, dict]) -> dict:
    def metrics_of(run_id: str | None) -> dict | None:
        found = records.get(run_id) if run_id else None
        return found["metrics"] if found is not None and found["status"] == "ok" else None

    stl = {role: metrics_of(run_id) for role, run_id, _ in spec.members}
    scratch = {role: metrics_of(run_id) for role, _, run_id in spec.members}
    metrics, account = compare_with_single_task(record["tasks"], record["metrics"],
                                                {role: m for role, m in stl.items() if m is not None},
                                                {role: m for role, m in scratch.items() if m is not None})
    record["metrics"].update(metrics)
    record["details"]["multitask"] = account
    return record


def _sources_to_prepare(suite: Suite, registry: PluginRegistry, todo: list[RunSpec]) -> list[dict]:
    """The source entries that runs still to do build from prepared weights; a seeded
    source (`Source.seeded`) once per seed those runs use, with that ``seed``."""
    seeds: dict[str, list[int]] = {}
    for spec in todo:
        if spec.init != "random" and spec.seed not in seeds.setdefault(spec.source.id, []):
            seeds[spec.source.id].append(spec.seed)
    preparations = []
    for entry in suite.sources:
        if entry.id not in seeds:
            continue
        if registry.get("source", entry.plugin).item.seeded(entry.params):
            preparations += [entry.to_json() | {"seed": seed} for seed in seeds[entry.id]]
        else:
            preparations.append(entry.to_json())
    return preparations


def _preparation_error(suite: Suite, failure) -> UserError:
    """A source that could not be prepared, as one line naming its suite entry."""
    index = next(i for i, entry in enumerate(suite.sources) if entry.id == failure.source["id"])
    where = f"{suite.path}: sources[{index}] ({failure.source['id']})"
    message = first_line(failure.message)
    if failure.user_error:
        return UserError(f"{where}: {message}")
    return UserError(f"{where}: {failure.source['plugin']} prepare failed: {failure.error_type}: {message}")


# ---------------------------------------------------------------------- the executor and its size


def check_options(options: ExecutionOptions) -> None:
    """Flags that contradict each other, before anything is planned."""
    if options.executor != "ray" and options.address:
        raise UserError("--address: only used with --executor ray")
    if options.executor == "ray" and options.devices:
        raise UserError("--devices: not used with --executor ray (Ray gives each run a GPU)")


def open_executor(suite: Suite, registry: PluginRegistry, todo: list[RunSpec], options: ExecutionOptions,
                  device: str, records: list[dict],
                  log: Callable[[str], None]) -> tuple[RunSettings, object, str]:
    """The settings, an executor for `todo` on `device` (nothing started yet), and where
    the runs execute in words, for the progress header."""
    if options.executor == "inline":
        from .run.executors.inline import InlineExecutor

        settings = run_settings(suite, device, 1, options.threads, "inline")
        return settings, InlineExecutor(settings, registry), "inline, in this process"
    if options.executor == "ray":
        from .run.executors.ray import RayExecutor

        settings = run_settings(suite, device, 1, options.threads, "ray")
        executor = RayExecutor(settings, address=options.address, log_dir=suite.output / "logs")
        return settings, executor, "as Ray tasks"
    from .run.executors.local import LocalExecutor

    workers, devices = local_workers(suite, options, device, len(todo), records)
    settings = run_settings(suite, device, workers.count, options.threads, "local")
    if options.jobs is not None and not device.startswith("cuda") and \
            options.jobs * (settings.threads or 1) > available_cores():
        log(f"tlbench: warning: --jobs {options.jobs} × {settings.threads} threads per run is more than the "
            f"{available_cores()} cores here; runs will slow each other down")
    executor = LocalExecutor(settings, jobs=workers.count, devices=devices, log_dir=suite.output / "logs")
    return settings, executor, str(workers)


def resolved_device(suite: Suite, options: ExecutionOptions) -> str:
    """The device runs use: the suite's (or ``--device``), ``auto`` resolved here; on
    Ray, the cluster's business."""
    from .run.execute import resolve_device

    requested = options.device or suite.device
    if options.executor == "ray":  # the cluster, not this machine, has the devices
        return "cuda" if requested.startswith("cuda") else requested
    resolved = resolve_device(requested)
    if resolved.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"{suite.path}: suite.device: {requested!r} asked for, but torch sees no CUDA device")
    return resolved


def local_workers(suite: Suite, options: ExecutionOptions, device: str, runs: int,
                  records: list[dict]) -> tuple[Workers, list[str]]:
    """How many local workers (``--jobs``, or auto), and the device of each."""
    from .run.executors import capacity
    from .run.executors.devices import device_pool

    requested = options.device or suite.device
    cuda_count = 0
    if device.startswith("cuda") or any(d.startswith("cuda") for d in options.devices or ()):
        import torch

        cuda_count = torch.cuda.device_count()
    pool = device_pool(requested, device, options.devices, cuda_count)
    if options.jobs is not None:
        workers = Workers(options.jobs, "--jobs")
    elif options.devices or device.startswith("cuda"):
        workers = capacity.gpu_workers(len(pool), runs)
    else:
        memory, memory_from = capacity.cpu_run_memory(suite.memory_budget_mb, records)
        workers = capacity.cpu_workers(capacity.available_cores(), memory, memory_from,
                                       capacity.available_memory_mb(), runs)
    return workers, [pool[i % len(pool)] for i in range(workers.count)]


def run_settings(suite: Suite, device: str, jobs: int = 1, threads: int | None = None,
                 executor: str = "local") -> RunSettings:
    """How this suite's runs execute: device, budgets, threads, caches, plugin paths."""
    if threads is None:  # on a local GPU the CPU threads only feed it: share the cores
        local_gpu = executor != "ray" and device.startswith("cuda")
        threads = max(1, available_cores() // max(1, jobs)) if local_gpu else CPU_THREADS
    python_path = [str(Path(suite.path).parent.resolve())]
    python_path += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return RunSettings(device=device, time_budget_s=suite.time_budget_s,
                       memory_budget_mb=suite.memory_budget_mb, deterministic=suite.deterministic,
                       cache_dir=str(suite.cache_dir), plugins=suite.plugins, threads=threads,
                       python_path=tuple(dict.fromkeys(python_path)), save_predictions=suite.save_predictions)
