"""The run matrix: every (source, targets, recipe, seed) plus the from-scratch baselines.

A `RunSpec` is plain data. Its identity (and so its `run_id`) is the resolved config:
plugin names, versions and parameters, each target's content hash for that seed, the
seed and the initialisation. Entry ids are labels, not identity: renaming an entry in a
suite does not rerun it. Nor is where content lies: parameters holding local paths
(`Entry.paths`) stay out, since the content hash (and, for a target with such
parameters, its revision) and a source's fingerprint identify the content itself, so
the same folder named by a relative or an absolute path, or moved, keeps its runs.

A run from a random initialisation (the from-scratch baselines) is identified by the
network it trains, not by the weights: the source's plugin, version and architecture.
Sources share a baseline when they train the same network: equal architectures of one
plugin, or, across plugins, equal architectures in the same `network` namespace
(`tlbench.api.Source.network`, e.g. networks that timm builds), so two different
networks never meet, even when two plugins happen to describe theirs alike. The
shared baseline is defined by the source whose (plugin, version) sorts first, whatever
the order of the suite's entries: a suite that does not combine plugins keeps the
baseline ids it always had.

A run takes its targets by role (`tlbench.api.Role`): a plain strategy one target,
'target'; a strategy that declares other roles runs on the suite's groups whose roles
match. Combinations that cannot work (a task the recipe does not support, a source
that cannot give what the task's head reads, inputs of another modality) are left out
here, each with the reason (`Exclusion`), before anything runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..hashing import canonical_json, config_hash
from ..plugins import PluginRegistry
from ..results.kinds import run_kind
from ..wording import baseline_label
from .compatibility import Exclusion, Plan, incompatibility
from .grids import space_from_json
from .search import split_searched
from .suite import Entry, Group, Suite

SINGLE = "target"
"""The role of a plain run's one target."""


RESULTS_VERSION = 1
"""Bumped when a change in tlbench's core would change the results of existing runs."""


def task_json(task, version: str) -> dict:
    """A task as records carry it: enough to read its metrics without the plugin."""
    return {"name": task.name, "version": version, "headline": task.headline,
            "metrics": [metric.to_json() for metric in task.metrics]}


def target_identity(entry: Entry, content_hash: str | None, revision: str | None = None) -> dict:
    """A target in a run's identity. A target whose path parameters left the identity adds
    its revision (the data set's version, which a target plugin computes wherever the data
    lie): two folders with equal parameters stay two targets in reports, while the same
    folder under another spelling or place stays one."""
    identity = {"plugin": entry.plugin, "version": entry.version, "params": entry.identity_params(),
                "content_hash": content_hash}
    if entry.paths:
        identity["revision"] = revision
    return identity


def network_key(source: Entry, architecture: dict | None, network: str | None) -> dict:
    """Which network a random initialisation of `source` trains: its architecture within
    its plugin's `network` namespace when it declares one (shared across plugins), else
    within its plugin and version."""
    scope = {"network": network} if network is not None else {"plugin": source.plugin, "version": source.version}
    return {**scope, "architecture": architecture}


@dataclass(frozen=True)
class RunSpec:
    source: Entry
    targets: tuple[tuple[str, Entry], ...]
    """(role, target entry) pairs; a plain run has one, in role 'target'."""
    recipe: Entry
    """The strategy (or, for an estimate, the estimator) that runs."""
    seed: int
    kind: str = "run"
    """The run kind (`tlbench.results.kinds`): 'run' trains a strategy, 'estimate' scores
    the source with a transferability estimator."""
    scored: str = SINGLE
    """The role whose target's test split the run is scored on."""
    init: str = "pretrained"
    """'pretrained' or 'random' (from-scratch baselines and strategies that ask for it)."""
    baseline: bool = False
    architecture: dict | None = None
    """The source's architecture, identifying random-init runs independently of weights."""
    network: str | None = None
    """The namespace of `architecture` shared across plugins (`Source.network`), if any."""
    source_fingerprint: str | None = None
    content_hashes: tuple[str, ...] | None = None
    """Each target's content hash for this seed, in the order of `targets`."""
    revisions: tuple[str | None, ...] | None = None
    """Each target's revision (`TargetData.revision`), in the order of `targets`; part of
    the identity of targets whose path parameters are not."""
    baseline_run_id: str | None = None
    """The from-scratch run this one is paired with for its negative-transfer score."""
    paired: tuple[tuple[str, str], ...] = ()
    """(plugin, run id) of the runs this one is compared with seed for seed
    (`Strategy.compared_with`: a domain-adaptation run with its ERM run)."""
    depends_on: tuple[str, ...] = ()
    """Run ids that must finish before this one starts (its paired baseline and comparisons)."""
    group: str | None = None
    """The suite group whose targets a multi-target run takes."""
    compared_with: tuple[str, ...] = ()
    """Plugins of the recipes this run's strategy is compared with (`Strategy.compared_with`)."""
    task: dict | None = None
    """The scored target's task as records carry it (name, version, headline, metric specs)."""
    search: dict | None = None
    """For the final run of a searched cell: the protocol its recipe's configuration was
    chosen by (search space, refit, trial seeds); part of its identity."""
    trial_of: str | None = None
    """For a search trial: the id of the searched entry (its own recipe id names its
    configuration)."""
    tuned: dict | None = None
    """For a final: what the search found (the chosen configuration, every trial's
    validation score); in its record, not its identity."""
    sampling: str | None = None
    """For a multi-task run: how its group's batches are drawn (part of its identity)."""
    tasks: dict | None = None
    """For a multi-task run: each member's task as records carry it, by role."""
    members: tuple[tuple[str, str | None, str | None], ...] = ()
    """For a multi-task run: (role, the single-task run it is compared with, the member's
    from-scratch baseline) per member; a run id is None when the plan has no such run."""
    single_task: dict | None = None
    """For a multi-task run: the recipe of the single-task runs it is compared with
    (plugin, version, parameters), part of its identity: its checkpoint selection reads
    their validation metrics, so another single-task recipe makes it another run."""
    references: dict | None = None
    """For a multi-task run: its members' single-task validation metrics (role → {"run_id",
    "val"}), filled in when those runs have finished; in its record, not its identity."""

    @property
    def target(self) -> Entry:
        """The scored target."""
        return dict(self.targets)[self.scored]

    @property
    def content_hash(self) -> str | None:
        """The scored target's content hash."""
        if self.content_hashes is None:
            return None
        return self.content_hashes[[role for role, _ in self.targets].index(self.scored)]

    @property
    def single(self) -> bool:
        return len(self.targets) == 1 and self.targets[0][0] == SINGLE

    def identity(self) -> dict:
        kind = run_kind(self.kind)
        source: dict[str, Any] = {"plugin": self.source.plugin, "version": self.source.version}
        if self.init == "random":
            source["architecture"] = self.architecture
        else:
            source["params"] = self.source.identity_params()
            source["fingerprint"] = self.source_fingerprint
        hashes = self.content_hashes or (None,) * len(self.targets)
        revisions = self.revisions or (None,) * len(self.targets)
        identity: dict[str, Any] = {"results_version": RESULTS_VERSION, "source": source}
        if self.single:
            identity["target"] = target_identity(self.targets[0][1], hashes[0], revisions[0])
        else:
            identity["targets"] = {role: target_identity(entry, content_hash, revision)
                                   for (role, entry), content_hash, revision in zip(self.targets, hashes, revisions)}
            identity["scored"] = self.scored
        identity[kind.recipe] = {"plugin": self.recipe.plugin, "version": self.recipe.version,
                                 "params": self.recipe.identity_params()}
        identity["seed"] = self.seed
        identity["init"] = self.init
        if self.search is not None:
            identity["search"] = self.search
        if self.sampling is not None:
            identity["sampling"] = self.sampling
        if self.single_task is not None:
            identity["single_task"] = self.single_task
        if kind.in_identity:
            identity["kind"] = self.kind
        return identity

    @property
    def run_id(self) -> str:
        if self.content_hashes is None:
            raise ValueError("run_id needs the targets' content hashes; plan the suite first")
        return config_hash(self.identity(), 20)

    @property
    def pairing_key(self) -> str:
        """Runs with equal keys share a from-scratch baseline: the same network (see
        `network_key`), target (or group of targets) and seed."""
        return canonical_json([network_key(self.source, self.architecture, self.network), self.target_label(),
                               self.seed])

    def comparison_key(self, plugin: str) -> str:
        """The key of the run of `plugin` this one is compared with: same source entry,
        targets and seed, pretrained."""
        return canonical_json([self.source.id, self.target_label(), self.seed, plugin])

    def target_label(self) -> str:
        return self.group if self.group is not None else self.target.id

    def label(self) -> str:
        source = baseline_label(self.source.id) if self.baseline else self.source.id
        return f"{source} → {self.target_label()} · {self.recipe.id} · seed {self.seed}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["targets"] = [[role, asdict(entry)] for role, entry in self.targets]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RunSpec":
        data = dict(data)

        def entry(raw: dict) -> Entry:
            tuples = {key: tuple(raw.get(key, ())) for key in ("settings", "implicit", "paths")}
            tuples["search"] = space_from_json(raw.get("search", ()))
            tuples["sweep"] = tuple(raw["sweep"]) if raw.get("sweep") is not None else None
            return Entry(**{**raw, **tuples})

        data["source"], data["recipe"] = entry(data["source"]), entry(data["recipe"])
        data["targets"] = tuple((role, entry(raw)) for role, raw in data["targets"])
        for key in ("content_hashes", "revisions", "depends_on"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        data["paired"] = tuple(tuple(pair) for pair in data.get("paired", ()))
        data["members"] = tuple(tuple(member) for member in data.get("members", ()))
        data["compared_with"] = tuple(data.get("compared_with", ()))
        return cls(**data)


@dataclass
class _Builder:
    """Collects a suite's runs, baselines and exclusions while `expand` walks it."""

    suite: Suite
    registry: PluginRegistry
    plan: Plan = field(default_factory=Plan)
    baselines: dict[str, RunSpec] = field(default_factory=dict)
    runs: list[RunSpec] = field(default_factory=list)
    estimates: list[RunSpec] = field(default_factory=list)
    seen_exclusions: set[tuple] = field(default_factory=set)
    networks: dict[str, tuple[dict, str | None]] = field(default_factory=dict)

    def task_json(self, target: Entry) -> dict:
        """The task of `target` as records carry it."""
        name = self.registry.get("target", target.plugin).item.task(target.params)
        registered = self.registry.get("task", name)
        return task_json(registered.item, registered.version)

    def exclude(self, exclusion: Exclusion) -> None:
        key = (exclusion.source, exclusion.target, exclusion.recipe, exclusion.reason)
        if key not in self.seen_exclusions:
            self.seen_exclusions.add(key)
            self.plan.exclusions.append(exclusion)

    def network(self, source: Entry) -> tuple[dict, str | None]:
        """The source's architecture and the namespace its plugin shares it in (asked once per entry)."""
        if source.id not in self.networks:
            item = self.registry.get("source", source.plugin).item
            self.networks[source.id] = (item.architecture(source.params), getattr(item, "network", None))
        return self.networks[source.id]

    def add(self, kind: str, source: Entry, targets: tuple[tuple[str, Entry], ...], recipe: Entry, seed: int,
            scored: str, group: Group | None) -> bool:
        """Add one run unless it cannot work; whether it was added."""
        reason = incompatibility(self.registry, source, dict(targets), recipe, run_kind(kind).recipe)
        target_label = group.id if group is not None else targets[0][1].id
        if reason is not None:
            self.exclude(Exclusion(kind, source.id, target_label, recipe.id, reason))
            return False
        item = self.registry.get(run_kind(kind).recipe, recipe.plugin).item
        if kind == "multitask" and group.sampling not in item.requires.samplings:
            self.exclude(Exclusion(kind, source.id, target_label, recipe.id,
                                   f"{recipe.plugin} supports the samplings {', '.join(item.requires.samplings)}; "
                                   f"group {group.id} is sampled {group.sampling}"))
            return False
        searched = [entry.id for entry in self.suite.strategies
                    if entry.plugin == getattr(item, "compared_with", None) and entry.search]
        if kind == "multitask" and (recipe.search or searched):
            self.exclude(Exclusion(kind, source.id, target_label, recipe.id,
                                   "a multi-task entry and its single-task comparison"
                                   f"{' (' + searched[0] + ')' if searched else ''} take no [strategies.search]: "
                                   "give their parameters"))
            return False
        architecture, network = self.network(source)
        compared = getattr(item, "compared_with", None) if kind in ("run", "multitask") else None
        spec = RunSpec(source, targets, recipe, seed, kind=kind, scored=scored,
                       init=getattr(item, "init", "pretrained"), architecture=architecture, network=network,
                       group=group.id if group is not None else None,
                       compared_with=(compared,) if compared else (), task=self.task_json(dict(targets)[scored]),
                       sampling=group.sampling if kind == "multitask" else None,
                       tasks={role: self.task_json(entry) for role, entry in targets} if kind == "multitask"
                       else None)
        (self.estimates if kind == "estimate" else self.runs).append(spec)
        if kind == "multitask" and self.suite.baseline is not None:  # each member's from-scratch baseline
            for _, member in targets:
                self.add_baseline(source, member, seed)
        return True

    def add_baseline(self, source: Entry, target: Entry, seed: int) -> None:
        """The from-scratch baseline of `source`'s network on `target` and `seed`, one per
        network: defined by the source of that network whose (plugin, version) sorts
        first, so its identity does not depend on the order of the suite's entries."""
        baseline = self.suite.baseline
        reason = incompatibility(self.registry, source, {SINGLE: target}, baseline, "strategy")
        if reason is not None:
            self.exclude(Exclusion("baseline", source.id, target.id, baseline.id, reason))
            return
        architecture, network = self.network(source)
        spec = RunSpec(source, ((SINGLE, target),), baseline, seed, init="random", baseline=True,
                       architecture=architecture, network=network, task=self.task_json(target))
        held = self.baselines.get(spec.pairing_key)
        if held is None or (source.plugin, source.version) < (held.source.plugin, held.source.version):
            self.baselines[spec.pairing_key] = spec


    def add_group_baseline(self, source: Entry, targets: tuple[tuple[str, Entry], ...], recipe: Entry, seed: int,
                           scored: str, group: Group) -> None:
        """The from-scratch baseline of a group's runs: the recipe its strategies are
        compared with (`Strategy.compared_with`), from a random initialisation of the
        source's network, on the same targets (for domain adaptation: trained on the
        labelled domain, scored on the unlabelled one)."""
        plugin = getattr(self.registry.get("strategy", recipe.plugin).item, "compared_with", None)
        if self.suite.baseline is None or plugin is None:
            return
        compared = next(entry for entry in self.suite.strategies if entry.plugin == plugin)
        architecture, network = self.network(source)
        spec = RunSpec(source, targets, replace(compared, id=f"scratch-{compared.id}"), seed, scored=scored,
                       init="random", baseline=True, architecture=architecture, network=network, group=group.id,
                       task=self.task_json(dict(targets)[scored]))
        held = self.baselines.get(spec.pairing_key)
        if held is None or (source.plugin, source.version) < (held.source.plugin, held.source.version):
            self.baselines[spec.pairing_key] = spec


def _roles(registry: PluginRegistry, kind: str, entry: Entry):
    return registry.get(run_kind(kind).recipe, entry.plugin).item.requires.roles


def _multitask(registry: PluginRegistry, kind: str, entry: Entry) -> bool:
    return kind == "run" and registry.get("strategy", entry.plugin).item.requires.multitask


def expand(suite: Suite, registry: PluginRegistry) -> Plan:
    """All runs of a suite, baselines first and estimates last, without content hashes
    (no data is read), and the combinations left out with their reasons."""
    build = _Builder(suite, registry)
    recipes = [("run", entry) for entry in suite.strategies] + [("estimate", entry) for entry in suite.estimators]
    for seed in suite.seeds:
        for target in suite.targets:
            for source in suite.sources:
                trained = False
                for kind, recipe in recipes:
                    if [role.name for role in _roles(registry, kind, recipe)] == [SINGLE] \
                            and not _multitask(registry, kind, recipe):
                        added = build.add(kind, source, ((SINGLE, target),), recipe, seed, SINGLE, None)
                        trained |= added and kind == "run"
                if trained and suite.baseline is not None:
                    build.add_baseline(source, target, seed)
        for group in suite.groups:
            for source in suite.sources:
                for kind, recipe in recipes:
                    if group.multitask or _multitask(registry, kind, recipe):
                        if group.multitask and _multitask(registry, kind, recipe):
                            targets = tuple((tid, suite.target(tid)) for tid in group.tasks)
                            build.add("multitask", source, targets, recipe, seed, group.tasks[0], group)
                        continue
                    roles = _roles(registry, kind, recipe)
                    if sorted(role.name for role in roles) != sorted(group.roles):
                        continue
                    targets = tuple((role.name, suite.target(group.roles[role.name])) for role in roles)
                    scored = next(role.name for role in roles if role.scored)
                    if build.add(kind, source, targets, recipe, seed, scored, group) and kind == "run":
                        build.add_group_baseline(source, targets, recipe, seed, scored, group)
    _unmatched_recipes(build, recipes)
    build.plan.specs, build.plan.finals = split_searched([*build.baselines.values(), *build.runs, *build.estimates],
                                                         suite)
    return build.plan


def _unmatched_recipes(build: _Builder, recipes: list[tuple[str, Entry]]) -> None:
    """A recipe whose roles no target or group of the suite has: one line saying so."""
    suite = build.suite
    for kind, recipe in recipes:
        if _multitask(build.registry, kind, recipe):
            if not any(group.multitask for group in suite.groups):
                build.exclude(Exclusion(kind, "*", "*", recipe.id, "trains on a task group; the suite has no "
                                        "[[groups]] entry with tasks = [...]"))
            continue
        roles = _roles(build.registry, kind, recipe)
        names = sorted(role.name for role in roles)
        if names == [SINGLE] or any(sorted(group.roles) == names for group in suite.groups if not group.multitask):
            continue
        build.exclude(Exclusion(kind, "*", "*", recipe.id,
                                f"takes targets in the roles {', '.join(names)}; the suite has no "
                                f"[[groups]] entry with exactly these roles"))


def fill_identity(specs: list[RunSpec], content_hashes: dict[tuple[str, int], str],
                  fingerprints: dict[str, str | None], revisions: dict[str, str | None] | None = None) -> list[RunSpec]:
    """`specs` with content hashes, revisions (by target id) and fingerprints filled in."""
    revisions = revisions or {}
    return [replace(spec, content_hashes=tuple(content_hashes[(entry.id, spec.seed)] for _, entry in spec.targets),
                    revisions=tuple(revisions.get(entry.id) for _, entry in spec.targets),
                    source_fingerprint=fingerprints.get(spec.source.id)) for spec in specs]


def _is_run(spec: RunSpec) -> bool:
    return spec.kind == "run" and not spec.baseline


def pair_runs(runs: list[RunSpec], others: list[RunSpec]) -> list[RunSpec]:
    """`runs` paired with the baselines and comparison runs among `runs` and `others`:
    their baseline run id, paired runs and what they depend on."""
    every = [*others, *runs]
    baseline_ids = {spec.pairing_key: spec.run_id for spec in every if spec.baseline and spec.kind == "run"}
    compared_ids: dict[str, str] = {}
    compared_recipes: dict[str, Entry] = {}
    for spec in every:  # the first run of each (source, targets, seed, plugin) is what others compare with
        if _is_run(spec) and spec.init != "random":
            compared_ids.setdefault(spec.comparison_key(spec.recipe.plugin), spec.run_id)
            compared_recipes.setdefault(spec.comparison_key(spec.recipe.plugin), spec.recipe)
    paired_runs = []
    for spec in runs:
        if spec.kind == "multitask":
            spec = _with_members(spec, baseline_ids, compared_ids, compared_recipes)
        elif _is_run(spec):
            scratch = baseline_ids.get(spec.pairing_key)
            paired = tuple((plugin, compared_ids[spec.comparison_key(plugin)])
                           for plugin in spec.compared_with if spec.comparison_key(plugin) in compared_ids)
            spec = replace(spec, baseline_run_id=scratch, paired=paired,
                           depends_on=tuple(dict.fromkeys([*(() if scratch is None else (scratch,)),
                                                           *(run_id for _, run_id in paired)])))
        paired_runs.append(spec)
    return paired_runs


def _with_members(spec: RunSpec, baseline_ids: dict[str, str], compared_ids: dict[str, str],
                  compared_recipes: dict[str, Entry]) -> RunSpec:
    """A multi-task run with, for each member, its single-task comparison run (the plugin
    its strategy is compared with, on that member alone, same source and seed) and its
    from-scratch baseline, and the single-task recipe in its identity; it waits for all
    of those runs."""
    members, recipe = [], None
    for role, entry in spec.targets:
        alone = replace(spec, kind="run", targets=((SINGLE, entry),), scored=SINGLE, group=None)
        key = next((alone.comparison_key(plugin) for plugin in spec.compared_with
                    if alone.comparison_key(plugin) in compared_ids), None)
        members.append((role, compared_ids.get(key), baseline_ids.get(alone.pairing_key)))
        if key is not None:
            recipe = recipe or compared_recipes[key]
    waits = [run_id for _, stl, scratch in members for run_id in (stl, scratch) if run_id is not None]
    single_task = None if recipe is None else {"plugin": recipe.plugin, "version": recipe.version,
                                               "params": recipe.identity_params()}
    return replace(spec, members=tuple(members), depends_on=tuple(dict.fromkeys(waits)), single_task=single_task)


def unique(specs: list[RunSpec]) -> list[RunSpec]:
    """One spec per run id (two sources of one plugin with equal architectures give one
    `init = "random"` run), in order."""
    kept: dict[str, RunSpec] = {}
    for spec in specs:
        kept.setdefault(spec.run_id, spec)
    return list(kept.values())


def with_identity(specs: list[RunSpec], content_hashes: dict[tuple[str, int], str],
                  fingerprints: dict[str, str | None],
                  revisions: dict[str, str | None] | None = None) -> list[RunSpec]:
    """Fill in content hashes, revisions (by target id), fingerprints and baseline
    pairings; drop duplicate runs."""
    filled = fill_identity(specs, content_hashes, fingerprints, revisions)
    return unique(pair_runs(filled, []))


def identify(planned: Plan, content_hashes: dict[tuple[str, int], str], fingerprints: dict[str, str | None],
             revisions: dict[str, str | None] | None = None) -> Plan:
    """A plan with identities: its runs paired, the finals of searches filled in, and the
    runs paired with a baseline that a search has still to choose set aside (`deferred`)."""
    specs = fill_identity(planned.specs, content_hashes, fingerprints, revisions)
    planned.finals = fill_identity(planned.finals, content_hashes, fingerprints, revisions)
    waiting = {spec.pairing_key for spec in planned.finals if spec.baseline}
    deferred = [spec for spec in specs if _is_run(spec) and spec.pairing_key in waiting]
    ready = [spec for spec in specs if not (_is_run(spec) and spec.pairing_key in waiting)]
    planned.specs = unique(pair_runs(ready, []))
    planned.deferred = unique(deferred)
    return planned
