"""Running a suite: plan, skip what the store holds, execute the rest, report.

The driver alone writes records. A run that is ok in the store is never redone; a
failed one is redone unless ``retry_failed`` is off; a run's record carries its
negative-transfer score against the baseline it was paired with.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .execute import RunSettings
from .matrix import RunSpec
from .planner import plan, prepare_sources
from .plugins import PluginRegistry
from .progress import Progress
from .records import FAILED, is_done
from .store import RecordStore
from .suite import Suite


@dataclass
class RunSummary:
    planned: int = 0
    skipped: int = 0
    executed: int = 0
    ok: int = 0
    failed: list[dict] = field(default_factory=list)
    kept_failures: int = 0
    output: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.kept_failures else 0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_settings(suite: Suite, jobs: int, device: str | None = None) -> RunSettings:
    from .execute import resolve_device

    requested = device or suite.device
    resolved = resolve_device(requested)
    if resolved.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"{suite.path}: suite.device: {requested!r} asked for, but torch sees no CUDA device")
    threads = max(1, available_cores() // max(1, jobs)) if not resolved.startswith("cuda") else None
    return RunSettings(device=resolved, time_budget_s=suite.time_budget_s,
                       memory_budget_mb=suite.memory_budget_mb, deterministic=suite.deterministic,
                       cache_dir=str(suite.cache_dir), plugins=suite.plugins, threads=threads)


def finalize(record: dict, spec: RunSpec, records: dict[str, dict]) -> dict:
    """Attempt number and negative-transfer score (paired with the same-seed baseline)."""
    previous = records.get(spec.run_id)
    record["attempt"] = (previous.get("attempt", 1) + 1) if previous else 1
    baseline = records.get(spec.baseline_run_id) if spec.baseline_run_id else None
    metrics = record["metrics"]
    if baseline is not None and baseline["status"] == "ok" and record["status"] == "ok":
        metrics["baseline_test_accuracy"] = baseline["metrics"]["test_accuracy"]
        metrics["negative_transfer"] = metrics["test_accuracy"] - metrics["baseline_test_accuracy"]
    return record


def make_executor(name: str, settings: RunSettings, jobs: int, registry: PluginRegistry,
                  output: Path, devices: list[str] | None = None, address: str | None = None):
    if name == "inline":
        from .executors.inline import InlineExecutor

        return InlineExecutor(settings, registry)
    if name == "ray":
        from .executors.ray import RayExecutor

        return RayExecutor(settings, address=address)
    from .executors.local import LocalExecutor

    return LocalExecutor(settings, jobs=jobs, devices=devices, log_dir=output / "logs")


def run_suite(suite: Suite, registry: PluginRegistry, *, executor: str = "local", jobs: int = 1,
              devices: list[str] | None = None, address: str | None = None, retry_failed: bool = True,
              device: str | None = None, log: Callable[[str], None] | None = None) -> RunSummary:
    log = log or (lambda message: print(message, file=sys.stderr))
    specs = plan(suite, registry, log)
    store = RecordStore(suite.output / "runs")
    records = store.load_all()
    for problem in store.problems:
        log(f"tlbench: warning: {problem}")
    summary = RunSummary(planned=len(specs), output=suite.output)
    todo = []
    for spec in specs:
        record = records.get(spec.run_id)
        if is_done(record):
            summary.skipped += 1
        elif record is not None and record["status"] in FAILED and not retry_failed:
            summary.kept_failures += 1
            summary.failed.append(record)
        else:
            todo.append(spec)
    if todo:
        settings = run_settings(suite, jobs, device)
        prepare_sources(suite, registry, todo, log)
        runner = make_executor(executor, settings, jobs, registry, suite.output, devices, address)
        progress = Progress(len(todo), log)

        def on_record(spec: RunSpec, record: dict) -> None:
            finalize(record, spec, records)
            store.write(record)
            records[spec.run_id] = record
            summary.executed += 1
            if record["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed.append(record)
            progress.finished(spec, record)

        try:
            runner.run(todo, on_record, progress.event)
        finally:
            progress.close()
    return summary
