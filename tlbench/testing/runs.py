"""Conformance of strategies and estimators, checked on real runs: each is run through
tlbench's own execution path (a planned `RunSpec` with its identity, executed by a
`Worker`) on a tiny source and target, and what it reports is checked against what
actually happened to the backbone. `run_context` gives unit tests the context a
strategy sees, without the rest of a run."""

from __future__ import annotations

import dataclasses

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


def _private_run(kind: str, recipe: Registered, params: dict, source: ItemRef | None,
                 targets: dict[str, ItemRef | None], seed: int, time_budget_s: float, device: str,
                 registry: PluginRegistry | None, cache_dir: str | Path | None,
                 sampling: str = "round-robin") -> _PrivateRun:
    """`recipe` on `source` and its `targets` by role (one, 'target', for a plain
    recipe; every member of a task group for a multi-task one, sampled by `sampling`),
    planned as a suite plans them: the spec, and a worker to execute it."""
    from ..api import Role
    from ..hashing import splits_content_hash
    from ..plan.compatibility import incompatibility
    from ..plan.matrix import RunSpec, task_json, with_identity
    from ..plan.suite import Entry
    from ..results.kinds import run_kind

    recipe_kind = run_kind(kind).recipe
    multitask = run_kind(kind).multitask
    roles = tuple(Role(name) for name in targets) if multitask else recipe.item.requires.roles
    if multitask and len(roles) < 2:
        fail(recipe, "trains on a task group: give two or more targets as targets={member: target, ...}")
    if multitask and sampling not in recipe.item.requires.samplings:
        fail(recipe, f"supports the samplings {', '.join(recipe.item.requires.samplings)}, not {sampling!r}")
    if sorted(targets) != sorted(role.name for role in roles):
        fail(recipe, f"takes targets in the roles {', '.join(r.name for r in roles)}; give them as "
                     f"targets={{{', '.join(repr(r.name) + ': ...' for r in roles)}}}")
    source_reg, source_params = resolve("source", source if source is not None else TinySource(), None, registry)
    env = kit_env(registry, cache_dir, device)
    watched_source = _WatchedSource(source_reg.item)
    private = PluginRegistry()
    private.add(watched_source, source_reg.origin)
    for registered in (registry or installed_plugins()).items("task"):
        private.add(registered.item, registered.origin)
    private.add(recipe.item, recipe.origin)
    by_role, hashes = {}, {}
    for role in roles:
        target_reg, target_params = resolve("target", targets[role.name] if targets[role.name] is not None
                                            else TinyTarget(), None, registry)
        if target_reg.name not in private.names("target"):
            private.add(target_reg.item, target_reg.origin)
        elif private.get("target", target_reg.name).item is not target_reg.item:
            fail(recipe, f"two different targets named {target_reg.name!r} in one check")
        target_reg.item.check(target_params, env)
        task = declared_task(target_reg, target_params, registry)
        data = target_reg.item.load(target_params, env)
        by_role[role.name] = (Entry("target", role.name, target_reg.name, target_reg.version, target_params), task)
        hashes[(role.name, seed)] = splits_content_hash(data.splits(seed), task.label_bytes)[0]
    source_entry = Entry("source", "source", source_reg.name, source_reg.version, source_params)
    recipe_entry = Entry(recipe_kind, recipe_kind, recipe.name, recipe.version, params)
    reason = incompatibility(private, source_entry, {role: entry for role, (entry, _) in by_role.items()},
                             recipe_entry, recipe_kind)
    if reason is not None:
        fail(recipe, f"cannot be checked on this source and target: {reason}")
    watched_source.check(source_params, env)
    scored = next(role.name for role in roles if role.scored)
    task = by_role[scored][1]
    tasks = {role: task_json(t, private.get("task", t.name).version) for role, (_, t) in by_role.items()}
    spec = RunSpec(source_entry, tuple((role, entry) for role, (entry, _) in by_role.items()), recipe_entry, seed,
                   kind=kind, scored=scored, init=getattr(recipe.item, "init", "pretrained"),
                   architecture=watched_source.architecture(source_params),
                   group="kit-group" if len(by_role) > 1 else None, task=tasks[scored],
                   sampling=sampling if multitask else None, tasks=tasks if multitask else None)
    [spec] = with_identity([spec], hashes, {"source": watched_source.fingerprint(source_params, env)})
    if spec.init != "random":
        watched_source.prepare(source_params, dataclasses.replace(env, seed=seed))
    from ..run.execute import RunSettings, Worker

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


class _ShuffledLabels(Target):
    """A target under test with the labels of some splits shuffled among their examples
    (rolled by one): what a strategy trains and selects must not change when labels it
    is never given change. Registered under its own name, beside the unshuffled target."""

    def __init__(self, inner: Target, splits: tuple[str, ...]):
        self.inner, self.shuffled = inner, splits
        self.name = f"{inner.name}.shuffled-{'-'.join(splits)}"
        self.version, self.params, self.description = inner.version, inner.params, inner.description

    def task(self, params):
        return self.inner.task(params)

    def modality(self, params):
        return self.inner.modality(params)

    def check(self, params, env):
        self.inner.check(params, env)

    def load(self, params, env):
        import numpy as np

        data = self.inner.load(params, env)
        original, shuffled = data.splits, self.shuffled

        def roll(labels):
            return np.roll(labels, 1, axis=0) if isinstance(labels, np.ndarray) else [*labels[-1:], *labels[:-1]]

        def splits(seed):
            made = original(seed)
            return Splits(*(Split(split.examples, roll(split.labels) if name in shuffled else split.labels)
                            for name, split in made.items()))

        data.splits = splits
        return data


def _targets_of(reg: Registered, target: ItemRef | None, targets: dict[str, ItemRef] | None) -> dict:
    roles = reg.item.requires.roles
    if targets is not None:
        return dict(targets)
    if [role.name for role in roles] != ["target"]:
        fail(reg, f"takes targets in the roles {', '.join(role.name for role in roles)}; give them as "
                  f"targets={{role: target}}")
    return {"target": target}


def check_strategy(strategy: ItemRef, params: dict | None = None, *, source: ItemRef | None = None,
                   target: ItemRef | None = None, targets: dict[str, ItemRef] | None = None, seed: int = 0,
                   time_budget_s: float = 600.0, device: str = "cpu", registry: PluginRegistry | None = None,
                   cache_dir: str | Path | None = None, withheld_labels_unseen: bool = True,
                   protocol: bool = True, sampling: str = "round-robin") -> StrategyCheck:
    """Run the strategy once, as `tlbench run` would, and check what it reports.

    `target` is the one target of a plain strategy (the kit's tiny one unless given);
    a strategy that takes several targets by role (domain adaptation) gets them as
    `targets={role: target}`. Checks: the source and targets are ones the strategy
    declares it supports; the run ends ok within `time_budget_s`; its predictions for
    every split are ones the scored target's task can score, and numeric predictions are
    finite; 0 <= trainable <= total parameters, the total includes the backbone, and
    every backbone parameter that changed is counted as trainable; a
    ``frozen_features_only`` strategy leaves the backbone's parameters and buffers
    bitwise unchanged; ``info`` is plain JSON. With `withheld_labels_unseen`, the run is
    repeated with the labels it is never given shuffled among their examples — the
    scored target's test labels, and the training and validation labels of every
    unlabelled role — and every prediction, the info, the selection, and every metric
    whose labels did not change must be bitwise the same. With `protocol`, it also runs
    as a search trial (given no test split: it must end ok and be scored on validation)
    and as a final refit on train+val (given no validation split: it must end ok, trained
    on both), as `tlbench.plan.search` runs every strategy a suite searches.

    A multi-task strategy (`Requirements.multitask`) takes its group's members as
    `targets={member: target, ...}` (two or more), drawn by `sampling`; it runs as a
    'multitask' run, every member is checked as the scored target is above (its
    predictions, and that shuffling its test labels changes nothing it trained or chose),
    and its protocol check is the final refit on train+val of every member.
    """
    import numpy as np
    import torch

    from ..results.store import jsonable

    reg, params = resolve("strategy", strategy, params, registry)
    multitask = reg.item.requires.multitask
    roles = dict(targets or {}) if multitask else _targets_of(reg, target, targets)
    kind = "multitask" if multitask else "run"
    watched = _WatchedStrategy(reg.item)
    run = _private_run(kind, type(reg)(watched, reg.origin), params, source, roles, seed, time_budget_s,
                       device, registry, cache_dir, sampling)
    record = run.worker.run(run.spec)
    _ok(reg, record, "run")
    if record["metrics"]["wall_seconds"] > time_budget_s:
        fail(reg, f"ran {record['metrics']['wall_seconds']:.1f} s, over its {time_budget_s:g} s budget; "
                  f"call run.check_budget() at step boundaries")
    result = watched.results[-1]
    for role, predicted in _all_predictions(result, run.spec).items():
        for name in SPLITS:
            predictions = predicted[name]
            if isinstance(predictions, np.ndarray) and predictions.dtype.kind in "fc" \
                    and not np.isfinite(predictions).all():
                fail(reg, f"predictions for split {name!r}{f' of {role}' if multitask else ''} contain NaN or "
                          f"infinity")
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
        if model.mixed_layers:  # a source that mixes its layers: a frozen-feature strategy may learn the mix
            changed = [name for name in changed if name != "layer_weights"]
        if changed:
            fail(reg, f"declares frozen_features_only but changed the backbone's parameters or buffers: "
                      f"{changed[:5]}; frozen features are served from a cache keyed by the source's weights")
    _check_counts(reg, check)
    if withheld_labels_unseen:
        _check_withheld_labels_unseen(reg, watched, params, source, roles, seed, time_budget_s, device, registry,
                                      cache_dir, check, run.spec)
    if protocol and multitask:
        _check_member_refit(reg, run, record)
    elif protocol:
        _check_protocol(reg, run, record)
    return check


def _all_predictions(result: FitResult, spec) -> dict:
    """Every scored target's predictions by role: the scored one's, and for a multi-task
    run every other member's (`FitResult.role_predictions`)."""
    if spec.kind != "multitask":
        return {spec.scored: result.predictions}
    return {spec.scored: result.predictions, **{role: result.role_predictions.get(role, {})
                                                for role, _ in spec.targets if role != spec.scored}}


def _check_member_refit(reg: Registered, run: _PrivateRun, record: dict) -> None:
    """A multi-task strategy as a final refit on train+val: every member trained on both."""
    refit = dataclasses.replace(run.spec, search={"space": {}, "refit": "train+val", "seeds": [run.spec.seed]})
    final = run.worker.run(refit)
    _ok(reg, final, "the run as a final refit on train+val (given no validation split)")
    for role in record["tasks"]:
        n_train, n_val = record["metrics"][f"{role}/n_train"], record["metrics"][f"{role}/n_val"]
        if final["metrics"][f"{role}/n_val"] != 0 or final["metrics"][f"{role}/n_train"] != n_train + n_val:
            fail(reg, f"as a final refit member {role} must train on train+val ({n_train} + {n_val}); its record "
                      f"says n_train = {final['metrics'][f'{role}/n_train']}, n_val = "
                      f"{final['metrics'][f'{role}/n_val']}")


def _check_protocol(reg: Registered, run: _PrivateRun, record: dict) -> None:
    """The strategy as a search trial (no test split) and as a final refit on train+val
    (no validation split)."""
    metrics = record["metrics"]
    headline = record["task"]["headline"]
    trial = run.worker.run(dataclasses.replace(run.spec, kind="trial"))
    _ok(reg, trial, "the run as a search trial (given no test split)")
    if trial["metrics"]["n_test"] != 0 or (metrics["n_val"] and trial["metrics"][f"val_{headline}"] is None):
        fail(reg, f"as a search trial it must be scored on validation without a test split; got n_test = "
                  f"{trial['metrics']['n_test']}, val_{headline} = {trial['metrics'][f'val_{headline}']}")
    refit = dataclasses.replace(run.spec, search={"space": {}, "refit": "train+val", "seeds": [run.spec.seed]})
    final = run.worker.run(refit)
    _ok(reg, final, "the run as a final refit on train+val (given no validation split)")
    if final["metrics"]["n_val"] != 0 or final["metrics"]["n_train"] != metrics["n_train"] + metrics["n_val"]:
        fail(reg, f"as a final refit it must train on train+val ({metrics['n_train']} + {metrics['n_val']}); its "
                  f"record says n_train = {final['metrics']['n_train']}, n_val = {final['metrics']['n_val']}")


def _check_withheld_labels_unseen(reg: Registered, watched: "_WatchedStrategy", params: dict, source,
                                  roles: dict, seed: int, time_budget_s: float, device: str, registry, cache_dir,
                                  check: StrategyCheck, spec) -> None:
    import numpy as np

    from ..api import Role
    from ..hashing import canonical_json
    from ..results.store import jsonable

    multitask = spec.kind == "multitask"
    declared = {name: Role(name) for name in roles} if multitask else \
        {role.name: role for role in reg.item.requires.roles}
    revealed = {item.partition(":")[::2] for item in reg.item.reveals(params)}
    shuffled_roles, changed, wrappers = {}, [], {}
    for name, ref in roles.items():
        role = declared[name]
        splits = tuple(split for split in ("train", "val", "test")
                       if (split == "test" and role.scored) or
                       (split != "test" and not role.labelled and (name, split) not in revealed))
        if splits:
            target_reg, target_params = resolve("target", ref if ref is not None else TinyTarget(), None, registry)
            key = (id(target_reg.item), splits)  # roles on one target plugin share its shuffled twin
            wrappers.setdefault(key, _ShuffledLabels(target_reg.item, splits))
            shuffled_roles[name] = (wrappers[key], target_params)
            changed += [f"{name} {split}" for split in splits]
        else:
            shuffled_roles[name] = ref
    run = _private_run(spec.kind, type(reg)(watched, reg.origin), params, source, shuffled_roles, seed,
                       time_budget_s, device, registry, cache_dir, spec.sampling or "round-robin")
    record = run.worker.run(run.spec)
    what = f"when only labels it is never given were shuffled ({', '.join(changed)})"
    _ok(reg, record, f"the run {what}")
    again = watched.results[-1]
    before, after = _all_predictions(check.result, spec), _all_predictions(again, run.spec)
    for role, predicted in before.items():
        for name in SPLITS:
            ours, theirs = predicted[name], after[role][name]
            same = np.array_equal(np.asarray(ours), np.asarray(theirs)) if isinstance(ours, np.ndarray) \
                else canonical_json(jsonable(ours)) == canonical_json(jsonable(theirs))
            if not same:
                fail(reg, f"its predictions for split {name!r}{f' of {role}' if multitask else ''} changed {what}: "
                          f"those labels reached its training or selection")
    scored = spec.scored
    unchanged = [split for split in ("train", "val") if f"{scored} {split}" not in changed]
    prefixes = tuple(f"{role}/{split}_" for role in roles for split in unchanged) if multitask else \
        tuple(f"{split}_" for split in unchanged)
    for key, value in check.record["metrics"].items():
        if key.startswith(prefixes) and record["metrics"].get(key) != value:
            fail(reg, f"metric {key} changed {what} ({value} → {record['metrics'].get(key)}): those labels "
                      f"reached its training or selection")
    for part in ("info", "selection"):
        if canonical_json(jsonable(getattr(check.result, part))) != canonical_json(jsonable(getattr(again, part))):
            fail(reg, f"FitResult.{part} changed {what}: those labels reached its training or selection")


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
    mix = check.changed.get("layer_weights", 0)  # a layer mix a frozen-feature strategy learnt (SourceModel)
    if reg.item.frozen_features_only and trainable > total - check.backbone_params + mix:
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
    run = _private_run("estimate", reg, params, source, {"target": target}, seed, time_budget_s, device, registry,
                       cache_dir)
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
