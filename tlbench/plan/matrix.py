"""The run matrix: every (source, target, strategy, seed) plus the from-scratch baselines.

A `RunSpec` is plain data. Its identity (and so its `run_id`) is the resolved config:
plugin names, versions and parameters, the target's content hash for that seed, the
seed and the initialisation. Entry ids are labels, not identity: renaming an entry in a
suite does not rerun it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..hashing import canonical_json, config_hash
from ..plugins import PluginRegistry
from .suite import Entry, Suite

def baseline_label(source_id: str) -> str:
    """How reports and progress lines name a from-scratch baseline: the source whose
    architecture it shares, trained from a random initialisation."""
    return f"{source_id} (from scratch)"


RESULTS_VERSION = 1
"""Bumped when a change in tlbench's core would change the results of existing runs."""


@dataclass(frozen=True)
class RunSpec:
    source: Entry
    target: Entry
    strategy: Entry
    seed: int
    init: str = "pretrained"
    """'pretrained' or 'random' (from-scratch baselines and strategies that ask for it)."""
    baseline: bool = False
    architecture: dict | None = None
    """The source's architecture, identifying random-init runs independently of weights."""
    source_fingerprint: str | None = None
    content_hash: str | None = None
    baseline_run_id: str | None = None
    """The from-scratch run this one is paired with for its negative-transfer score."""
    kind: str = "run"
    """'run' (a strategy trains and predicts) or 'estimate' (`strategy` is then the
    transferability estimator that scores the source)."""

    @property
    def is_estimate(self) -> bool:
        return self.kind == "estimate"

    def identity(self) -> dict:
        source: dict[str, Any] = {"plugin": self.source.plugin, "version": self.source.version}
        if self.init == "random":
            source["architecture"] = self.architecture
        else:
            source["params"] = self.source.identity_params()
            source["fingerprint"] = self.source_fingerprint
        identity = {
            "results_version": RESULTS_VERSION,
            "source": source,
            "target": {"plugin": self.target.plugin, "version": self.target.version,
                       "params": self.target.identity_params(), "content_hash": self.content_hash},
            "estimator" if self.is_estimate else "strategy": {
                "plugin": self.strategy.plugin, "version": self.strategy.version,
                "params": self.strategy.identity_params()},
            "seed": self.seed,
            "init": self.init,
        }
        if self.is_estimate:
            identity["kind"] = "estimate"
        return identity

    @property
    def run_id(self) -> str:
        if self.content_hash is None:
            raise ValueError("run_id needs the target content hash; plan the suite first")
        return config_hash(self.identity(), 20)

    @property
    def pairing_key(self) -> str:
        """Runs with equal keys share a from-scratch baseline."""
        return canonical_json([self.source.plugin, self.architecture, self.target.id, self.seed])

    def label(self) -> str:
        source = baseline_label(self.source.id) if self.baseline else self.source.id
        return f"{source} → {self.target.id} · {self.strategy.id} · seed {self.seed}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunSpec":
        data = dict(data)
        for key in ("source", "target", "strategy"):
            data[key] = Entry(**{**data[key], "settings": tuple(data[key].get("settings", ()))})
        return cls(**data)


def expand(suite: Suite, registry: PluginRegistry) -> list[RunSpec]:
    """All runs of a suite, baselines first and estimates last, without content hashes
    (no data is read)."""
    baselines: dict[str, RunSpec] = {}
    runs: list[RunSpec] = []
    estimates: list[RunSpec] = []
    for seed in suite.seeds:
        for target in suite.targets:
            for source in suite.sources:
                source_item = registry.get("source", source.plugin).item
                architecture = source_item.architecture(source.params)
                if suite.baseline is not None:
                    baseline = RunSpec(source, target, suite.baseline, seed, init="random",
                                       baseline=True, architecture=architecture)
                    baselines.setdefault(baseline.pairing_key, baseline)
                for strategy in suite.strategies:
                    init = registry.get("strategy", strategy.plugin).item.init
                    runs.append(RunSpec(source, target, strategy, seed, init=init,
                                        architecture=architecture))
                for estimator in suite.estimators:
                    estimates.append(RunSpec(source, target, estimator, seed, architecture=architecture,
                                             kind="estimate"))
    return [*baselines.values(), *runs, *estimates]


def with_identity(specs: list[RunSpec], content_hashes: dict[tuple[str, int], str],
                  fingerprints: dict[str, str | None]) -> list[RunSpec]:
    """Fill in content hashes, fingerprints and baseline pairings; drop duplicate runs."""
    filled = [replace(spec, content_hash=content_hashes[(spec.target.id, spec.seed)],
                      source_fingerprint=fingerprints.get(spec.source.id)) for spec in specs]
    baseline_ids = {spec.pairing_key: spec.run_id for spec in filled if spec.baseline}
    unique: dict[str, RunSpec] = {}
    for spec in filled:
        if not spec.baseline and not spec.is_estimate:
            spec = replace(spec, baseline_run_id=baseline_ids.get(spec.pairing_key))
        unique.setdefault(spec.run_id, spec)
    return list(unique.values())
