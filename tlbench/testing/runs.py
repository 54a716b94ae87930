"""Conformance of strategies and estimators, checked on real runs: each is run through
tlbench's own execution path (a planned `RunSpec` with its identity, executed by a
`Worker`) on a tiny source and target, and what it reports is checked against what
actually happened to the backbone. `run_context` gives unit tests the context a
strategy sees, without the rest of a run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..api import SPLITS, FitResult, Source, SourceModel, Split, Splits, Strategy, Target, TargetData
from ..plugins import PluginRegistry, Registered
from .items import ItemRef, fail, installed_plugins, kit_env, module_state, resolve, state_differences
from .targets import declared_task
from .tiny import TinySource, TinyTarget


def run_context(source: SourceModel, target: TargetData, seed: int = 0, *, splits: Splits | None = None,
                device: str = "cpu", budget=None, feature_cache=None, registry: PluginRegistry | None = None):
    """A run of a built `source` on a loaded `target` as a strategy sees it (the test
    labels withheld), for unit tests of strategies and estimators: call
    ``strategy.fit(params, run_context(source, target))``. `splits` replace the target's
    own for `seed` (e.g. a shortened test split)."""
    import torch

    from ..run.budget import Budget
    from ..run.context import RunContext

    task = (registry or installed_plugins()).get("task", target.task).item
    run = RunContext(source=source, seed=seed, device=torch.device(device),
                     budget=budget if budget is not None else Budget(float("inf")), feature_cache=feature_cache)
    run.add_target("target", target.info(), task, splits if splits is not None else target.splits(seed), scored=True)
    return run


class _WatchedSource(Source):
    """The source under test, remembering each model it builds and its weights then."""

    def __init__(self, inner: Source):
        self.inner = inner
        self.name, self.version, self.params = inner.name, inner.version, inner.params
        self.description = inner.description
        self.built: list[tuple[SourceModel, list, dict]] = []

    def architecture(self, params):
        return self.inner.architecture(params)

    def capabilities(self, params):
        return self.inner.capabilities(params)

    def check(self, params, env):
        self.inner.check(params, env)

    def fingerprint(self, params, env):
        return self.inner.fingerprint(params, env)

    def prepare(self, params, env):
        self.inner.prepare(params, env)

    def build(self, params, env, pretrained=True):
        model = self.inner.build(params, env, pretrained=pretrained)
        named = list(model.backbone.named_parameters())
        values = [(name, param, param.detach().cpu().clone()) for name, param in named]
        self.built.append((model, values, module_state(model.backbone)))
        return model


class _WatchedStrategy(Strategy):
    """The strategy under test, keeping the `FitResult` it returns."""

    def __init__(self, inner: Strategy):
        self.inner = inner
        self.name, self.version, self.params = inner.name, inner.version, inner.params
        self.description, self.init = inner.description, inner.init
        self.frozen_features_only, self.requires = inner.frozen_features_only, inner.requires
        self.results: list[FitResult] = []

    def fit(self, params, run):
        result = self.inner.fit(params, run)
        self.results.append(result)
        return result


@dataclass
class _PrivateRun:
    """A recipe, a source and a target in a registry of their own, planned as a suite
    would plan them: the spec to execute and the worker that executes it."""

    spec: object
    worker: object
    source: _WatchedSource


def _private_run(kind: str, recipe: Registered, params: dict, source: ItemRef | None, target: ItemRef | None,
                 seed: int, time_budget_s: float, device: str, registry: PluginRegistry | None,
                 cache_dir: str | Path | None) -> _PrivateRun:
    from ..hashing import splits_content_hash
    from ..plan.compatibility import incompatibility
    from ..plan.matrix import SINGLE, RunSpec, task_json, with_identity
    from ..plan.suite import Entry
    from ..results.kinds import run_kind
    from ..run.execute import RunSettings, Worker

    source_reg, source_params = resolve("source", source if source is not None else TinySource(), None, registry)
    target_reg, target_params = resolve("target", target if target is not None else TinyTarget(), None, registry)
    env = kit_env(registry, cache_dir, device)
    task = declared_task(target_reg, target_params, registry)
    watched_source = _WatchedSource(source_reg.item)
    private = PluginRegistry()
    private.add(watched_source, source_reg.origin)
    private.add(target_reg.item, target_reg.origin)
    for registered in (registry or installed_plugins()).items("task"):
        private.add(registered.item, registered.origin)
    private.add(recipe.item, recipe.origin)
    entries = {part: Entry(part, part, r.name, r.version, p) for part, r, p in (
        ("source", source_reg, source_params), ("target", target_reg, target_params),
        (run_kind(kind).recipe, recipe, params))}
    reason = incompatibility(private, entries["source"], {SINGLE: entries["target"]},
                             entries[run_kind(kind).recipe], run_kind(kind).recipe)
    if reason is not None:
        fail(recipe, f"cannot be checked on this source and target: {reason}")
    target_reg.item.check(target_params, env)
    watched_source.check(source_params, env)
    data = target_reg.item.load(target_params, env)
    spec = RunSpec(entries["source"], ((SINGLE, entries["target"]),), entries[run_kind(kind).recipe], seed,
                   kind=kind, init=getattr(recipe.item, "init", "pretrained"),
                   architecture=watched_source.architecture(source_params),
                   task=task_json(task, private.get("task", task.name).version))
    [spec] = with_identity([spec], {("target", seed): splits_content_hash(data.splits(seed), task.label_bytes)[0]},
                           {"source": watched_source.fingerprint(source_params, env)})
    if spec.init != "random":
        watched_source.prepare(source_params, env)
    settings = RunSettings(device=device, time_budget_s=time_budget_s, cache_dir=str(env.cache_dir))
    return _PrivateRun(spec, Worker(settings, registry=private), watched_source)


def _ok(reg: Registered, record: dict, what: str) -> None:
    if record["status"] != "ok":
        error = record.get("error") or {}
        fail(reg, f"{what} ended with status {record['status']!r}: {error.get('type')}: {error.get('message')}"
                  f"\n{error.get('traceback') or ''}")


# --------------------------------------------------------------------------- strategies


@dataclass
class StrategyCheck:
    """What `check_strategy` saw: the run's record, the strategy's result, and which
    backbone parameters its training changed."""

    record: dict
    result: FitResult
    backbone_params: int
    changed: dict[str, int] = field(default_factory=dict)
    """Backbone parameter name -> elements, for every parameter whose values changed."""

    @property
    def changed_params(self) -> int:
        return sum(self.changed.values())


class _PermutedTestLabels(Target):
    """The target under test with its test labels shuffled among the test examples: what
    a strategy trains and selects must not change."""

    def __init__(self, inner: Target):
        self.inner = inner
        self.name, self.version, self.params = inner.name, inner.version, inner.params
        self.description = inner.description

    def task(self, params):
        return self.inner.task(params)

    def modality(self, params):
        return self.inner.modality(params)

    def check(self, params, env):
        self.inner.check(params, env)

    def load(self, params, env):
        import numpy as np

        data = self.inner.load(params, env)
        original = data.splits

        def splits(seed):
            made = original(seed)
            labels = made.test.labels
            shifted = np.roll(labels, 1, axis=0) if isinstance(labels, np.ndarray) else [*labels[-1:], *labels[:-1]]
            return Splits(made.train, made.val, Split(made.test.examples, shifted))

        data.splits = splits
        return data


def check_strategy(strategy: ItemRef, params: dict | None = None, *, source: ItemRef | None = None,
                   target: ItemRef | None = None, seed: int = 0, time_budget_s: float = 600.0,
                   device: str = "cpu", registry: PluginRegistry | None = None,
                   cache_dir: str | Path | None = None, test_labels_unseen: bool = True) -> StrategyCheck:
    """Run the strategy once, as `tlbench run` would, and check what it reports.

    Checks: the source and target are ones the strategy declares it supports; the run
    ends ok within `time_budget_s`; its predictions for every split are ones the
    target's task can score, and numeric predictions are finite; 0 <= trainable <= total
    parameters, the total includes the backbone, and every backbone parameter that
    changed is counted as trainable; a ``frozen_features_only`` strategy leaves the
    backbone's parameters and buffers bitwise unchanged; ``info`` is plain JSON. With
    `test_labels_unseen`, the run is repeated with the test labels shuffled among the
    test examples: every prediction, every train and validation metric and the info must
    be bitwise the same (the test labels never reach training or selection).
    """
    import numpy as np
    import torch

    from ..results.store import jsonable

    reg, params = resolve("strategy", strategy, params, registry)
    watched = _WatchedStrategy(reg.item)
    run = _private_run("run", type(reg)(watched, reg.origin), params, source, target, seed, time_budget_s,
                       device, registry, cache_dir)
    record = run.worker.run(run.spec)
    _ok(reg, record, "run")
    if record["metrics"]["wall_seconds"] > time_budget_s:
        fail(reg, f"ran {record['metrics']['wall_seconds']:.1f} s, over its {time_budget_s:g} s budget; "
                  f"call run.check_budget() at step boundaries")
    result = watched.results[-1]
    for name in SPLITS:
        predictions = result.predictions[name]
        if isinstance(predictions, np.ndarray) and predictions.dtype.kind in "fc" \
                and not np.isfinite(predictions).all():
            fail(reg, f"predictions for split {name!r} contain NaN or infinity")
    try:
        json.dumps(jsonable(result.info), allow_nan=False)
    except (TypeError, ValueError) as exc:
        fail(reg, f"FitResult.info must be plain JSON data (it is recorded): {exc}")
    model, values, state = run.source.built[-1]
    check = StrategyCheck(record=record, result=result, backbone_params=sum(v.numel() for _, _, v in values))
    for name, param, before in values:
        if not torch.equal(param.detach().cpu(), before):
            check.changed[name] = before.numel()
    if reg.item.frozen_features_only:
        changed = state_differences(state, module_state(model.backbone))
        if changed:
            fail(reg, f"declares frozen_features_only but changed the backbone's parameters or buffers: "
                      f"{changed[:5]}; frozen features are served from a cache keyed by the source's weights")
    _check_counts(reg, check)
    if test_labels_unseen:
        _check_test_labels_unseen(reg, watched, params, source, target, seed, time_budget_s, device, registry,
                                  cache_dir, check)
    return check


def _check_test_labels_unseen(reg: Registered, watched: "_WatchedStrategy", params: dict, source, target, seed: int,
                              time_budget_s: float, device: str, registry, cache_dir, check: StrategyCheck) -> None:
    import numpy as np

    from ..hashing import canonical_json
    from ..results.store import jsonable

    target_reg, target_params = resolve("target", target if target is not None else TinyTarget(), None, registry)
    permuted = (_PermutedTestLabels(target_reg.item), target_params)
    run = _private_run("run", type(reg)(watched, reg.origin), params, source, permuted, seed, time_budget_s,
                       device, registry, cache_dir)
    record = run.worker.run(run.spec)
    _ok(reg, record, "the run with shuffled test labels")
    again = watched.results[-1]
    for name in SPLITS:
        ours, theirs = check.result.predictions[name], again.predictions[name]
        same = np.array_equal(np.asarray(ours), np.asarray(theirs)) if isinstance(ours, np.ndarray) \
            else canonical_json(jsonable(ours)) == canonical_json(jsonable(theirs))
        if not same:
            fail(reg, f"its predictions for split {name!r} changed when only the test labels were shuffled: the "
                      f"test labels reached its training or selection")
    for key, value in check.record["metrics"].items():
        if key.startswith(("train_", "val_")) and record["metrics"].get(key) != value:
            fail(reg, f"metric {key} changed when only the test labels were shuffled ({value} → "
                      f"{record['metrics'].get(key)}): the test labels reached its training or selection")
    if canonical_json(jsonable(check.result.info)) != canonical_json(jsonable(again.info)):
        fail(reg, "FitResult.info changed when only the test labels were shuffled: the test labels reached "
                  "its training or selection")


def _check_counts(reg: Registered, check: StrategyCheck) -> None:
    trainable, total = check.result.trainable_params, check.result.total_params
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (trainable, total)):
        fail(reg, "trainable_params and total_params must be ints")
    if not 0 <= trainable <= total:
        fail(reg, f"reports {trainable} trainable of {total} parameters: expected 0 <= trainable <= total")
    if total < check.backbone_params:
        fail(reg, f"reports {total} parameters in total, fewer than the backbone's {check.backbone_params}: "
                  f"the total counts the whole model that predicts")
    if check.changed_params > trainable:
        fail(reg, f"changed {check.changed_params} backbone parameters ({len(check.changed)} tensors, e.g. "
                  f"{sorted(check.changed)[:3]}) but reports only {trainable} trainable")
    if reg.item.frozen_features_only and trainable > total - check.backbone_params:
        fail(reg, f"declares frozen_features_only but counts {trainable} trainable parameters, more than the "
                  f"{total - check.backbone_params} outside the backbone")


# --------------------------------------------------------------------------- estimators


def check_estimator(estimator: ItemRef, params: dict | None = None, *, source: ItemRef | None = None,
                    target: ItemRef | None = None, seed: int = 0, time_budget_s: float = 600.0,
                    device: str = "cpu", registry: PluginRegistry | None = None,
                    cache_dir: str | Path | None = None) -> dict:
    """Score a tiny source for a tiny target through tlbench's execution path, twice.

    Checks: the estimate ends ok with a finite score (or is recorded as not applicable
    when the estimator needs a source classifier the source lacks); the same inputs give
    the same score; the backbone's parameters and buffers are left bitwise unchanged.
    Returns the first estimate record.
    """
    import math

    reg, params = resolve("estimator", estimator, params, registry)
    run = _private_run("estimate", reg, params, source, target, seed, time_budget_s, device, registry, cache_dir)
    first, second = run.worker.run(run.spec), run.worker.run(run.spec)
    for record in (first, second):
        _ok(reg, record, "estimate")
    if first["details"].get("not_applicable"):
        if not reg.item.requires.source_head:
            fail(reg, "recorded as not applicable although it does not need a source classifier")
        return first
    score = first["metrics"]["score"]
    if not isinstance(score, float) or not math.isfinite(score):
        fail(reg, f"score must be a finite float, got {score!r}")
    if second["metrics"]["score"] != score:
        fail(reg, f"the same inputs gave two scores: {score!r} and {second['metrics']['score']!r}")
    model, _, state = run.source.built[-1]
    changed = state_differences(state, module_state(model.backbone))
    if changed:
        fail(reg, f"changed the backbone's parameters or buffers: {changed[:5]}; estimators read frozen features")
    return first
