"""Executing one run, inside whatever process an executor chose: spec in, record out.

Load the targets (cached per process), check that they give the examples and labels
the suite was planned with, build the source (pretrained, or randomly initialised for
from-scratch runs), seed everything, and give the run to its kind's executing function
(`tlbench.results.kinds`): a strategy trains and predicts and the task scores its
predictions (`fit`), or an estimator scores the source (`estimate`). Every failure
becomes a record with a status, a one-line reason and the traceback; nothing here
raises for a bad run.
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

from ..api import Env, Role
from .budget import Budget, BudgetExceeded, MemorySampler
from .protocol import protocol_splits
from ..hashing import canonical_json, splits_content_hash
from ..plan.matrix import RunSpec
from ..plugins import PluginRegistry
from ..provenance import provenance
from ..results.kinds import run_kind
from ..results.predictions import ATTACHMENTS
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
    save_predictions: bool = False
    """Whether runs keep their test predictions, unless their strategy entry says
    otherwise (`tlbench.results.predictions`)."""

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

    def env(self, device: str, seed: int | None = None) -> Env:
        return Env(cache_dir=Path(self.settings.cache_dir), device=device, registry=self.registry,
                   log=lambda message: print(message, file=sys.stderr, flush=True), seed=seed)

    def target_data(self, entry, env: Env, keep: set[str]):
        """A loaded target, kept in memory while the runs need it (`keep`: the cache keys
        of the current run's targets; others are dropped)."""
        key = canonical_json([entry.plugin, entry.version, entry.params])
        if key not in self._targets:
            item = self.registry.get("target", entry.plugin).item
            self._targets[key] = item.load(entry.params, env)
        for other in [k for k in self._targets if k not in keep and k != key]:
            del self._targets[other]
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
                context, held = self._context(spec, device, budget, on_event, state)
                metrics, details = run_kind(spec.kind).resolve("execute")(self, spec, context, held)
            attachments = details.pop(ATTACHMENTS, None)
            status, error = "ok", None
        except BaseException as exc:  # every failure becomes a record
            if isinstance(exc, KeyboardInterrupt):
                raise
            status = _status_of(exc)
            error = error_info(exc, traceback.format_exc())
            metrics, details, attachments = {}, {}, None
            context = state.get("context")
            if context is not None and context.last_eval:
                metrics.update(last_validation(context.last_eval))
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
        record = new_record(record_spec(spec), spec.run_id, status, metrics=metrics, details=details,
                            provenance=prov, error=error, started_at=started_at, finished_at=now(),
                            kind=spec.kind, task=spec.task if run_kind(spec.kind).scored_by_task else None,
                            tasks=spec.tasks if run_kind(spec.kind).multitask else None)
        if attachments:  # the driver writes them beside the records and removes them
            record[ATTACHMENTS] = attachments
        return record

    def saves_predictions(self, spec: RunSpec) -> bool:
        """Whether `spec` keeps its test predictions: its strategy entry's choice, else the suite's."""
        own = spec.recipe.save_predictions
        return (own if own is not None else self.settings.save_predictions) and \
            not run_kind(spec.kind).withholds_test

    def prepare(self, source: dict, device: str | None = None) -> None:
        """One-time preparation of a source (``Entry`` as JSON; with a ``seed`` for a
        seeded source), e.g. pretraining its weights into the cache; done in a worker so
        that preparations run in parallel and with the same settings (threads, device)
        as the runs that use them."""
        item = self.registry.get("source", source["plugin"]).item
        item.prepare(source["params"], self.env(resolve_device(device or self.settings.device), source.get("seed")))

    def _context(self, spec: RunSpec, device: str, budget: Budget, on_event, state: dict):
        """The run's context (what its strategy or estimator sees) and, by role, the full
        splits with every label, which the worker alone holds for scoring."""
        import torch

        from .context import RunContext
        from .seeding import seed_everything

        env = self.env(device, spec.seed)
        seed_everything(spec.seed, self.settings.deterministic)
        keep = {canonical_json([e.plugin, e.version, e.params]) for _, e in spec.targets}
        loaded = {}
        for (role, entry), planned in zip(spec.targets, spec.content_hashes or (None,) * len(spec.targets)):
            data = self.target_data(entry, env, keep)
            task = self.registry.get("task", data.task).item
            splits = data.splits(spec.seed)
            content_hash, digests = splits_content_hash(splits, task.label_bytes)
            if planned and content_hash != planned:
                raise RuntimeError(f"target {entry.id!r} gave different examples or labels than when the suite "
                                   f"was planned (content hash {content_hash[:12]} != {planned[:12]})")
            splits, digests = protocol_splits(splits, digests, withhold_test=run_kind(spec.kind).withholds_test,
                                              refit=(spec.search or {}).get("refit"))
            loaded[role] = (entry, data, task, splits, digests)
        recipe = self.registry.get(run_kind(spec.kind).recipe, spec.recipe.plugin).item
        source_item = self.registry.get("source", spec.source.plugin).item
        seed_everything(spec.seed, self.settings.deterministic)
        source = source_item.build(spec.source.params, env, pretrained=spec.init != "random")
        declared = {role.name: role for role in recipe.requires.roles}
        revealed = revealed_labels(recipe, spec)
        context = RunContext(source=source, seed=spec.seed, device=torch.device(device), budget=budget,
                             feature_cache=self.feature_cache() if spec.init != "random" else None,
                             on_event=on_event, sampling=spec.sampling, references=dict(spec.references or {}))
        for role, (entry, data, task, splits, digests) in loaded.items():
            if source.modality != data.modality:
                raise ValueError(f"source {spec.source.id!r} takes {source.modality} inputs but target "
                                 f"{entry.id!r} is {data.modality}")
            if data.modality == "audio":
                splits = _conditioned_audio(source, spec, role, len(loaded) > 1, splits)
                loaded[role] = (entry, data, task, splits, digests)
            context.add_target(role, data.info(), task, splits, labelled=declared.get(role, Role(role)).labelled,
                               scored=role == spec.scored, digests=digests, revealed=revealed.get(role, ()))
        context.revealed = tuple(f"{role}:{split}" for role, splits in revealed.items() for split in splits)
        state["context"] = context
        seed_everything(spec.seed, self.settings.deterministic)
        return context, {role: splits for role, (_, _, _, splits, _) in loaded.items()}


def _conditioned_audio(source, spec: RunSpec, role: str, several: bool, splits):
    """A target's audio as the source takes it (`tlbench.audio`), what was done recorded
    in the source's meta (by role when the run has several targets)."""
    from ..audio import condition_splits

    if source.audio is None:
        raise ValueError(f"source {spec.source.id!r} takes audio but its SourceModel declares no `audio` "
                         "(the rate it takes)")
    splits, done = condition_splits(splits, source.audio)
    if several:
        source.meta.setdefault("audio", {})[role] = done
    else:
        source.meta["audio"] = done
    return splits


def revealed_labels(recipe, spec: RunSpec) -> dict[str, tuple[str, ...]]:
    """Role → the splits whose labels the recipe asks for beyond what its roles give it
    (`Strategy.reveals`); a test split is refused."""
    asked = getattr(recipe, "reveals", lambda params: ())(spec.recipe.params)
    revealed: dict[str, tuple[str, ...]] = {}
    for item in asked:
        role, _, split = item.partition(":")
        if split not in ("train", "val"):
            raise ValueError(f"{spec.recipe.plugin!r} asked for the labels of {item!r}; only train and val labels "
                             f"can be revealed, never a test split's")
        revealed[role] = (*revealed.get(role, ()), split)
    return revealed


def last_validation(last_eval: dict) -> dict:
    """The validation metrics of a run's last completed evaluation (what a run stopped
    part-way still records)."""
    return {key: value for key, value in last_eval.items() if key.startswith("val_")}


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
    out = {
        "source": spec.source.to_json() | {"fingerprint": spec.source_fingerprint,
                                           "architecture": spec.architecture},
        "target": spec.target.to_json() | {"content_hash": spec.content_hash},
        run_kind(spec.kind).recipe: spec.recipe.to_json(),
        "seed": spec.seed,
        "init": spec.init,
        "baseline": spec.baseline,
        "baseline_run_id": spec.baseline_run_id,
        "identity": spec.identity(),
    }
    if not spec.single:
        hashes = spec.content_hashes or (None,) * len(spec.targets)
        out["targets"] = {role: entry.to_json() | {"content_hash": content_hash}
                          for (role, entry), content_hash in zip(spec.targets, hashes)}
        out["scored"], out["group"] = spec.scored, spec.group
    if spec.paired:
        out["paired"] = dict(spec.paired)
    if spec.sampling is not None:
        out["sampling"] = spec.sampling
    if spec.members:
        out["members"] = [{"role": role, "single_task_run_id": stl, "baseline_run_id": scratch}
                          for role, stl, scratch in spec.members]
    if spec.references:
        out["references"] = spec.references
    if spec.depends_on:
        out["depends_on"] = list(spec.depends_on)
    if spec.search is not None:
        out["search"] = {**spec.search, **(spec.tuned or {})}
    return out


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
