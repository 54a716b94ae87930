"""Training one model on a task group: a shared backbone, one head per task.

A multi-task run's targets are the members of a suite's task group, each a labelled
target with its own task type. This module makes such a group trainable by the one
engine (`tlbench.run.engine.train`) with no special case there:

- `MultiTaskModel` is the backbone with a head per member. Its forward pass computes each
  representation the heads read once per batch (pooled vectors, feature maps, tokens)
  and gives every head its own, so with shared inputs the backbone runs once for all
  heads; the outputs are a dict by member role.
- `TaskGroup` stands where a single target stands in the engine: its batches are the
  group's (see `tlbench.api.SAMPLINGS`) and its objective (`GroupObjective`) gives one
  loss per member present in the batch, as a dict, which the strategy's `backward`
  weights or whose gradients it aggregates.
- `TaskGroup.predict` predicts every member's split with its own head; `TaskGroup.selection`
  compares checkpoints on the mean relative validation improvement of the members over
  their single-task runs (`RunContext.references`).

A plain target is a group of one (the single-task recipe the group is compared with),
so single-task and multi-task runs share every line of their training.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..api import SAMPLINGS, Objective, Split
from .batches import Inputs, SplitBatches
from .context import RunTarget, encoder_for
from .engine import REPRESENTATION_METHODS, Selection, TaskModel, autocast, concat_predictions, eval_batch_size


class ByRole(dict):
    """Inputs, or targets, of a step by member role, each member's own batch (a group whose
    members' examples differ); a plain dict stays what it is (a text batch's tensors)."""


class LabelColumns(Sequence):
    """The labels of a shared-input split, one column per member: example i is
    ``{role: that member's label i}``; whole columns go to each member's objective as
    they are."""

    def __init__(self, columns: dict[str, Any]):
        self.columns = columns
        self.n = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        return {role: column[i] for role, column in self.columns.items()}


class GroupObjective(Objective):
    """The members' objectives side by side: targets and losses by role."""

    def __init__(self, objectives: dict[str, Objective]):
        self.objectives = objectives

    def targets(self, labels) -> dict:
        if isinstance(labels, LabelColumns):
            return {role: self.objectives[role].targets(column) for role, column in labels.columns.items()}
        return {role: objective.targets([label[role] for label in labels])
                for role, objective in self.objectives.items()}

    def loss(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        """One mean loss per member that has both outputs and targets in the batch."""
        return {role: self.objectives[role].loss(outputs[role], targets[role])
                for role in self.objectives if role in outputs and role in targets}

    def configure(self, knobs: dict) -> "GroupObjective":
        return GroupObjective({role: objective.configure(knobs) for role, objective in self.objectives.items()})


class Heads(nn.Module):
    """One head per member, each reading its representation (shared inputs) or its own
    batch's (a member's own inputs)."""

    def __init__(self, heads: dict[str, nn.Module], representations: dict[str, str]):
        super().__init__()
        self.roles = list(heads)
        # module names cannot hold '.', which target ids may: heads are kept by position
        self.heads = nn.ModuleList([heads[role] for role in self.roles])
        self.representations = representations

    def head(self, role: str) -> nn.Module:
        return self.heads[self.roles.index(role)]

    def forward(self, features: dict) -> dict:
        out = {}
        for role, head in zip(self.roles, self.heads):
            key = role if isinstance(features, ByRole) else self.representations[role]
            if key in features:
                out[role] = head(features[key])
        return out


class MultiTaskModel(TaskModel):
    """The source's backbone and a head per member: each representation the heads read is
    computed once per batch."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module], representations: dict[str, str]):
        super().__init__(backbone, Heads(heads, representations))
        self.representations = dict(representations)

    def represent(self, inputs: Inputs, representation: str) -> Any:
        if representation == "pooled":
            return self.backbone(inputs)
        method = getattr(self.backbone, REPRESENTATION_METHODS[representation], None)
        if method is None:
            raise TypeError(f"the source's backbone gives no {representation.replace('_', ' ')} "
                            f"({REPRESENTATION_METHODS[representation]} is missing)")
        return method(inputs)

    def features(self, inputs: Inputs) -> dict:
        if isinstance(inputs, ByRole):
            return ByRole({role: self.represent(batch, self.representations[role]) for role, batch in inputs.items()})
        return {name: self.represent(inputs, name) for name in dict.fromkeys(self.representations.values())}

    def member(self, role: str) -> TaskModel:
        """The backbone with one member's head: inputs to that member's outputs."""
        return TaskModel(self.backbone, self.head.head(role), self.representations[role])


# --------------------------------------------------------------------------- batches


def _member_batches(batches: SplitBatches, generator: torch.Generator):
    """A member's training batches for as long as asked, reshuffled at every pass; a last
    batch of one example is dropped (BatchNorm in train mode)."""
    n = len(batches)
    drop_last = n > batches.batch_size and n % batches.batch_size == 1
    while True:
        for inputs, targets in batches.batches(shuffle=True, generator=generator, drop_last=drop_last):
            yield inputs, targets


class RoundRobinBatches:
    """Each step, one batch of every member in turn; an epoch is as many steps as the
    largest member has batches (smaller members cycle, reshuffled at each pass)."""

    def __init__(self, members: dict[str, SplitBatches], batch_size: int):
        self.members, self.batch_size = members, batch_size

    def __len__(self) -> int:
        return max(len(batches) for batches in self.members.values())

    def steps(self, drop_last: bool) -> int:
        n = len(self)
        return n // self.batch_size if drop_last and n > self.batch_size else math.ceil(n / self.batch_size)

    def batches(self, shuffle: bool = True, generator: torch.Generator | None = None, drop_last: bool = False):
        streams = self._streams(generator)
        for _ in range(self.steps(drop_last)):
            inputs, targets = ByRole(), ByRole()
            for role, stream in streams.items():
                inputs[role], targets[role] = next(stream)
            yield inputs, targets

    def _streams(self, generator):
        if not hasattr(self, "_open"):  # one stream per member for the whole training
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
            self._open = {role: _member_batches(batches, torch.Generator().manual_seed(seed + i))
                          for i, (role, batches) in enumerate(self.members.items())}
        return self._open


class ProportionalBatches(RoundRobinBatches):
    """Each step, one batch of one member, drawn with probability proportional to its
    training split's size; an epoch is as many steps as the members have batches together."""

    def __len__(self) -> int:
        return sum(len(batches) for batches in self.members.values())

    def batches(self, shuffle: bool = True, generator: torch.Generator | None = None, drop_last: bool = False):
        streams = self._streams(generator)
        roles = list(self.members)
        sizes = torch.tensor([float(len(self.members[role])) for role in roles])
        for _ in range(self.steps(drop_last)):
            role = roles[int(torch.multinomial(sizes, 1, generator=generator))]
            inputs, targets = next(streams[role])
            yield ByRole({role: inputs}), ByRole({role: targets})


# --------------------------------------------------------------------------- the group


class TaskGroup:
    """A run's task group as the engine trains on it (what a `RunTarget` is for one target)."""

    role = "group"

    def __init__(self, run, sampling: str | None = None):
        self.run = run
        self.members: dict[str, RunTarget] = {role: run.role(role) for role in run.roles}
        self.sampling = sampling or "shared"
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.sampling!r}; expected one of {', '.join(SAMPLINGS)}")
        for role, member in self.members.items():
            if member.objective is None:
                raise ValueError(f"member {role!r} of the task group has no training labels")
        self.objective = GroupObjective({role: member.objective for role, member in self.members.items()})
        self.encode = self._shared_encoder() if self.sampling == "shared" else None
        self._batches: dict[str, Any] = {}

    # what the engine reads of a target
    @property
    def device(self) -> torch.device:
        return self.run.device

    @property
    def seed(self) -> int:
        return self.run.seed

    def check_budget(self) -> None:
        self.run.check_budget()

    def note_eval(self, **metrics: Any) -> None:
        self.run.note_eval(**metrics)

    def split(self, name: str) -> Split:
        """Empty: the engine's default selection reads one target's headline, and a group
        selects by `selection` instead (its members' splits are `members[role].split`)."""
        return Split([], None)

    def _shared_encoder(self):
        """One encoding for examples every member labels: whole images when any member is
        dense (its labels are in image coordinates, and a whole image suits an image-level
        label too), the same encoder otherwise; members wanting word lists and members
        wanting whole texts cannot share inputs."""
        source = self.run.source
        tasks = [member.task for member in self.members.values()]
        if len({task.words for task in tasks}) > 1:
            raise ValueError("a shared-input group cannot mix word-level tasks with others: their examples differ "
                             "(use sampling 'round-robin' or 'proportional')")
        dense = next((task for task in tasks if task.dense), None)
        return encoder_for(source, dense or tasks[0])

    def check_shared(self) -> None:
        """Refuse a shared-input group whose members' examples differ (one line naming them)."""
        roles = list(self.members)
        first = self.members[roles[0]]
        for role in roles[1:]:
            for split in ("train", "val", "test"):
                if first.digests(split) != self.members[role].digests(split):
                    raise ValueError(f"sampling 'shared' needs members with the same examples, but {roles[0]!r} "
                                     f"and {role!r} differ in their {split} split (use sampling 'round-robin' or "
                                     f"'proportional')")

    def batches(self, name: str, batch_size: int | None = None, num_workers: int = 0):
        """A split's batches: shared inputs with every member's labels (targets None where
        the split's labels are withheld), or the group's sampling of its members' batches."""
        batch_size = batch_size or self.run.batch_size_hint
        if self.sampling != "shared":
            members = {role: member.batches(name, batch_size, num_workers) for role, member in self.members.items()}
            kind = RoundRobinBatches if self.sampling == "round-robin" else ProportionalBatches
            return kind(members, batch_size)
        if name not in self._batches:
            splits = {role: member.split(name) for role, member in self.members.items()}
            examples = next(iter(splits.values())).examples
            labelled = all(split.labels is not None for split in splits.values())
            labels = LabelColumns({role: split.labels for role, split in splits.items()}) if labelled else None
            self._batches[name] = SplitBatches(examples, labels, self.encode, self.device,
                                               targets=self.objective.targets if labelled else None)
        return self._batches[name].resized(batch_size, num_workers)

    @torch.no_grad()
    def predict(self, model: MultiTaskModel, split: str, params: dict) -> dict[str, Any]:
        """Every member's predictions on `split`, by role (the model is left in eval mode)."""
        model.eval()
        size = eval_batch_size(params)
        if self.sampling == "shared":
            parts: dict[str, list] = {role: [] for role in self.members}
            for inputs, _ in self.batches(split, size, params.get("num_workers", 0)).batches():
                self.check_budget()
                with autocast(self.device, params):
                    outputs = model(inputs)
                for role, member in self.members.items():
                    parts[role].append(member.objective.predictions(outputs[role]))
            return {role: concat_predictions(chunks) for role, chunks in parts.items()}
        out = {}
        for role, member in self.members.items():
            head, chunks = model.member(role), []
            for inputs, _ in member.batches(split, size, params.get("num_workers", 0)).batches():
                self.check_budget()
                with autocast(self.device, params):
                    chunks.append(member.objective.predictions(head(inputs)))
            out[role] = concat_predictions(chunks)
        return out

    def selection(self, model_params: dict, references: dict[str, dict] | None = None) -> Selection | None:
        """Checkpoints compared by the members' mean relative validation improvement over
        their single-task runs (a group of one: its headline, in its direction):
        mean_i s_i (v_i − r_i) / |r_i|, v_i the member's validation headline, r_i its
        single-task run's, s_i +1 when higher is better and −1 when lower is. A member
        whose reference is missing (or 0) counts s_i v_i unnormalised. None when a
        member's validation split is empty or its labels are withheld."""
        references = references or {}
        for member in self.members.values():
            split = member.split("val")
            if not len(split) or split.labels is None:
                return None
        reads = tuple(f"{role}:val:labels" for role in self.members)
        if len(self.members) == 1:
            (role, member), = self.members.items()
            headline = member.task.metric(member.task.headline)
            return Selection(rule="val", metric=f"val_{headline.name}", higher_is_better=headline.higher_is_better,
                             score=lambda model: member.headline("val", self.predict(model, "val", model_params)[role]),
                             reads=reads)

        def score(model) -> float | None:
            predictions = self.predict(model, "val", model_params)
            terms = []
            for role, member in self.members.items():
                value = member.headline("val", predictions[role])
                if value is None:
                    return None
                sign = 1.0 if member.task.metric(member.task.headline).higher_is_better else -1.0
                reference = self.reference(role, references)
                terms.append(sign * (value - reference) / abs(reference) if reference else sign * value)
            return float(np.mean(terms))

        return Selection(rule="val-relative", metric="val_relative_improvement", higher_is_better=True, score=score,
                         reads=reads)

    def reference(self, role: str, references: dict[str, dict]) -> float | None:
        """The validation headline of a member's single-task run, when known."""
        member = self.members[role]
        value = ((references.get(role) or {}).get("val") or {}).get(f"val_{member.task.headline}")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def multitask_model(group: TaskGroup, heads: dict[str, nn.Module] | None = None) -> MultiTaskModel:
    """The run's backbone with a fresh head per member (each member's task's own)."""
    source = group.run.source
    heads = heads or {role: member.objective.head(source) for role, member in group.members.items()}
    return MultiTaskModel(source.backbone, heads,
                          {role: member.task.representation for role, member in group.members.items()})

