"""Which combinations of source, target and recipe can run, decided before anything runs.

Strategies and estimators declare what they need (`tlbench.api.Requirements`: task
types, a closed-form linear head, modalities, roles, the source's own classifier),
targets declare their task type and modality from their parameters, sources what they
will offer once built (`SourceCapabilities`), and tasks what their head reads. A
combination that cannot meet them is left out of the matrix with one line saying why,
instead of surfacing as a failed run. What a plugin leaves unknown until it is built is
not held against it here; the run finds a mismatch then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..plugins import PluginRegistry
from .suite import Entry

REPRESENTATION_WORDS = {"pooled": "pooled features", "feature_maps": "feature maps", "tokens": "token sequences"}


@dataclass(frozen=True)
class Exclusion:
    """A combination the plan leaves out, and why."""

    kind: str
    """'run', 'estimate' or 'baseline'."""
    source: str
    target: str
    """A target id, a group id, or '*' for every one."""
    recipe: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} → {self.target} · {self.recipe}: {self.reason}"


@dataclass
class Plan:
    """The runs of a suite and the combinations left out.

    A suite with searches has runs that wait for them (`tlbench.plan.search`): the finals
    of each searched cell, whose configuration is chosen once its trials are recorded,
    and the runs paired with a searched baseline that is not chosen yet."""

    specs: list = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    finals: list = field(default_factory=list)
    """Finals of searched cells, their recipe's searched parameters not chosen yet."""
    deferred: list = field(default_factory=list)
    """Runs (with identities) whose paired baseline is one of `finals`."""

    @property
    def waiting(self) -> bool:
        return bool(self.finals or self.deferred)


def incompatibility(registry: PluginRegistry, source: Entry, targets: dict[str, Entry], recipe: Entry,
                    recipe_kind: str) -> str | None:
    """Why `recipe` cannot run `source` on `targets` (role → entry), or None."""
    needs = registry.get(recipe_kind, recipe.plugin).item.requires
    offers = registry.get("source", source.plugin).item.capabilities(source.params)
    for target in targets.values():
        target_item = registry.get("target", target.plugin).item
        modality, task_name = target_item.modality(target.params), target_item.task(target.params)
        task = registry.get("task", task_name).item
        if offers.modality and modality and offers.modality != modality:
            return f"source {source.id} takes {offers.modality} inputs; target {target.id} is {modality}"
        if needs.modalities is not None and modality is not None and modality not in needs.modalities:
            return f"{recipe.plugin} takes {', '.join(needs.modalities)} inputs; target {target.id} is {modality}"
        if needs.tasks is not None and task_name not in needs.tasks:
            return (f"{recipe.plugin} supports {', '.join(needs.tasks)} tasks; target {target.id} is a "
                    f"{task_name} task")
        if needs.linear_head and task.linear_loss is None:
            return (f"{recipe.plugin} fits linear heads in closed form; the {task_name} task of target "
                    f"{target.id} has no such head")
        if task.words and offers.words is False:
            return (f"source {source.id} cannot encode word lists (pre-tokenised text), which the {task_name} "
                    f"head of target {target.id} reads")
        if task.representation not in offers.representations:
            return (f"source {source.id} gives no {REPRESENTATION_WORDS[task.representation]}, which the "
                    f"{task_name} head of target {target.id} reads")
    if needs.source_head and offers.source_head is False:
        return f"{recipe.plugin} needs the source's own classifier; source {source.id} has none"
    return None
