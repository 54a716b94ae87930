"""Executing one run, inside whatever process an executor chose: spec in, record out.

Load the target (cached per process), build the source (pretrained, or randomly
initialised for from-scratch runs), seed everything, hand both to the strategy, and
turn the logits it returns into accuracies. Every failure becomes a record with a
status, a one-line reason and the traceback; nothing here raises for a bad run.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..api import SPLITS, Env
from .budget import Budget, BudgetExceeded, MemorySampler
from ..hashing import canonical_json, splits_content_hash
from ..plan.matrix import RunSpec
from ..plugins import PluginRegistry
from ..provenance import provenance
from ..results.records import error_info, new_record


@dataclass(frozen=True)
class RunSettings:
    """How runs execute (not what they are): device, budgets, caches, threads."""

    device: str = "auto"
    time_budget_s: float = 3600.0
    memory_budget_mb: float | None = None
    deterministic: bool = False
    cache_dir: str = str(Path.home() / ".cache" / "tlbench")
    plugins: tuple[str, ...] = ()
    threads: int | None = None
    """Intra-op threads of each run (torch and BLAS); None keeps the libraries' default.
    On the CPU this is part of the numerics (reductions split by thread), so it is fixed
    by the settings, never derived from how many runs execute at once."""
    python_path: tuple[str, ...] = ()
    """Directories to import plugin modules from (the suite's folder, PYTHONPATH), for
    worker processes that do not inherit the driver's ``sys.path`` (Ray)."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunSettings":
        return cls(**{**data, "plugins": tuple(data.get("plugins", ())),
                      "python_path": tuple(data.get("python_path", ()))})


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return "cuda:0"
    return device


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Worker:
    """Per-process state reused across runs: plugins, loaded targets, the feature cache."""

    settings: RunSettings
    registry: PluginRegistry | None = None
    _targets: dict[str, object] = field(default_factory=dict)
    _feature_cache: object = None

    def __post_init__(self) -> None:
        apply_process_settings(self.settings)
        if self.registry is None:
            self.registry = PluginRegistry.load(self.settings.plugins)
        from ..provenance import cpu_name, git_revision

        git_revision(), cpu_name()  # cached: a failing run's record must not wait on git

    def env(self, device: str) -> Env:
        return Env(cache_dir=Path(self.settings.cache_dir), device=device, registry=self.registry,
                   log=lambda message: print(message, file=sys.stderr, flush=True))

    def target_data(self, spec: RunSpec, env: Env):
        key = canonical_json([spec.target.plugin, spec.target.version, spec.target.params])
        if key not in self._targets:
            item = self.registry.get("target", spec.target.plugin).item
            self._targets.clear()  # keep one data set in memory at a time
            self._targets[key] = item.load(spec.target.params, env)
        return self._targets[key]

    def feature_cache(self):
        from .features import FeatureCache

        if self._feature_cache is None:
            self._feature_cache = FeatureCache(Path(self.settings.cache_dir) / "features")
        return self._feature_cache

    def run(self, spec: RunSpec, on_event: Callable[[str, dict], None] = lambda k, p: None,
            device: str | None = None) -> dict:
        """Execute `spec` and return its record (status ok or a failure)."""
        device = resolve_device(device or self.settings.device)
        started_at, t0 = now(), time.perf_counter()
        sampler = MemorySampler()
        budget = Budget(self.settings.time_budget_s, self.settings.memory_budget_mb, device, sampler)
        state: dict = {"context": None}
        try:
            with sampler:
                _prepare_cuda(device, self.settings.memory_budget_mb)
                metrics, details = self._run(spec, device, budget, on_event, state)
            status, error = "ok", None
        except BaseException as exc:  # every failure becomes a record
            if isinstance(exc, KeyboardInterrupt):
                raise
            status = _status_of(exc)
            error = error_info(exc, traceback.format_exc())
            metrics, details = {}, {}
            context = state.get("context")
            if context is not None and context.last_eval:
                metrics["val_accuracy"] = context.last_eval.get("val_accuracy")
                details["last_eval"] = context.last_eval
        metrics["wall_seconds"] = time.perf_counter() - t0
        try:
            metrics["peak_memory_mb"] = budget.peak_memory_mb()
        except Exception:  # a dead CUDA context cannot report its peak
            metrics["peak_memory_mb"] = sampler.peak_mb
        prov = provenance(device)
        prov.update(deterministic=self.settings.deterministic, threads=_threads(),
                    time_budget_s=self.settings.time_budget_s,
                    memory_budget_mb=self.settings.memory_budget_mb, pid=os.getpid())
        return new_record(record_spec(spec), spec.run_id, status, metrics=metrics, details=details,
                          provenance=prov, error=error, started_at=started_at, finished_at=now(),
                          kind=spec.kind)

    def prepare(self, source: dict, device: str | None = None) -> None:
        """One-time preparation of a source (``Entry`` as JSON), e.g. pretraining its
        weights into the cache; done in a worker so that preparations run in parallel
        and with the same settings (threads, device) as the runs that use them."""
        item = self.registry.get("source", source["plugin"]).item
        item.prepare(source["params"], self.env(resolve_device(device or self.settings.device)))

    def _run(self, spec: RunSpec, device: str, budget: Budget, on_event, state: dict):
        import numpy as np
        import torch

        from .context import RunContext
        from .engine import accuracy
        from .seeding import seed_everything

        env = self.env(device)
        seed_everything(spec.seed, self.settings.deterministic)
        data = self.target_data(spec, env)
        splits = data.splits(spec.seed)
        content_hash, digests = splits_content_hash(splits)
        if spec.content_hash and content_hash != spec.content_hash:
            raise RuntimeError(f"target {spec.target.id!r} gave different examples than when the suite "
                               f"was planned (content hash {content_hash[:12]} != {spec.content_hash[:12]})")
        strategy = self.registry.get("estimator" if spec.is_estimate else "strategy", spec.strategy.plugin).item
        source_item = self.registry.get("source", spec.source.plugin).item
        seed_everything(spec.seed, self.settings.deterministic)
        source = source_item.build(spec.source.params, env, pretrained=spec.init != "random")
        if source.modality != data.modality:
            raise ValueError(f"source {spec.source.id!r} takes {source.modality} inputs but target "
                             f"{spec.target.id!r} is {data.modality}")
        context = RunContext(source=source, target=data, splits=splits, seed=spec.seed,
                             device=torch.device(device), budget=budget,
                             feature_cache=self.feature_cache() if spec.init != "random" else None,
                             on_event=on_event)
        context._digests.update(digests)
        state["context"] = context
        hits_before = (self.feature_cache().stats.hits, self.feature_cache().stats.misses)
        seed_everything(spec.seed, self.settings.deterministic)
        if spec.is_estimate:
            return self._estimate(strategy, spec, context, hits_before)
        result = strategy.fit(spec.strategy.params, context)
        metrics: dict = {}
        for name in SPLITS:
            labels = getattr(splits, name).labels
            logits = np.asarray(result.logits.get(name))
            if logits.shape != (len(labels), data.num_classes):
                raise ValueError(f"strategy {spec.strategy.plugin!r} returned logits of shape {logits.shape} "
                                 f"for split {name!r}, expected {(len(labels), data.num_classes)}")
            metrics[f"{name}_accuracy"] = accuracy(logits, labels)
            metrics[f"n_{name}"] = len(labels)
        if metrics["train_accuracy"] is not None and metrics["test_accuracy"] is not None:
            metrics["overfitting_gap"] = metrics["train_accuracy"] - metrics["test_accuracy"]
        metrics["trainable_params"] = int(result.trainable_params)
        metrics["total_params"] = int(result.total_params)
        stats = self.feature_cache().stats
        details = {"strategy": plain_json(result.info, f"strategy {spec.strategy.plugin!r} FitResult.info"),
                   "source": plain_json(source.meta, f"source {spec.source.plugin!r} SourceModel.meta"),
                   "target": {"content_hash": content_hash, "revision": data.revision,
                              "num_classes": data.num_classes, "modality": data.modality},
                   "feature_cache": {"hits": stats.hits - hits_before[0],
                                     "misses": stats.misses - hits_before[1]},
                   "weights_id": source.weights_id}
        return metrics, details


    def _estimate(self, estimator, spec: RunSpec, context, hits_before) -> tuple[dict, dict]:
        """Score the source with a transferability estimator (an ``estimate`` record)."""
        import math

        details: dict = {"source": plain_json(context.source.meta, "SourceModel.meta"),
                         "weights_id": context.source.weights_id, "target": {"content_hash": spec.content_hash, "revision": context.target.revision}}
        metrics: dict = {"n_train": len(context.split("train"))}
        if estimator.needs_source_head and context.source.source_head is None:
            details["not_applicable"] = (f"{spec.strategy.plugin} needs the source's own classifier; "
                                         f"source {spec.source.id!r} has none")
            return metrics, details
        score = float(estimator.estimate(spec.strategy.params, context))
        if not math.isfinite(score):
            raise ValueError(f"estimator {spec.strategy.plugin!r} returned {score}")
        metrics["score"] = score
        stats = self.feature_cache().stats
        details["feature_cache"] = {"hits": stats.hits - hits_before[0], "misses": stats.misses - hits_before[1]}
        return metrics, details


def plain_json(value, what: str):
    """`value` as plain JSON data, or a run error naming `what` (never a crash of the suite
    when the record is written)."""
    import json

    from ..results.store import jsonable

    try:
        return json.loads(json.dumps(jsonable(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not plain JSON data, which a record must be: {exc}") from None


def record_spec(spec: RunSpec) -> dict:
    """The part of a record that says what ran (identity plus labels)."""
    return {
        "source": spec.source.to_json() | {"fingerprint": spec.source_fingerprint,
                                           "architecture": spec.architecture},
        "target": spec.target.to_json() | {"content_hash": spec.content_hash},
        "estimator" if spec.is_estimate else "strategy": spec.strategy.to_json(),
        "seed": spec.seed,
        "init": spec.init,
        "baseline": spec.baseline,
        "baseline_run_id": spec.baseline_run_id,
        "identity": spec.identity(),
    }


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, BudgetExceeded):
        return exc.status
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "over_memory"
    return "error"


def apply_process_settings(settings: RunSettings) -> None:
    """What a worker process sets once: import paths, thread counts, cuBLAS determinism."""
    for folder in reversed(settings.python_path):
        if folder not in sys.path and os.path.isdir(folder):
            sys.path.insert(0, folder)
    if settings.deterministic:  # read by cuBLAS when its first handle is made
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if settings.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(settings.threads)
        threadpool_limits(settings.threads)  # numpy's and scipy's BLAS too


def _prepare_cuda(device: str, memory_budget_mb: float | None) -> None:
    """Pin this process to the run's GPU, reset its peak counter, and cap the caching
    allocator at the memory budget, so an allocation past it fails (over_memory)."""
    if not device.startswith("cuda"):
        return
    import torch

    torch.cuda.set_device(device)
    torch.cuda.reset_peak_memory_stats(device)
    if memory_budget_mb is not None:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_budget_mb * 2**20 / total), device)


def _threads() -> int:
    import torch

    return torch.get_num_threads()
