"""Multi-task learning: one backbone and a head per task, trained on a task group.

Strategies:

- `stl`: single-task learning, the recipe every multi-task strategy is compared with.
  On one target it trains exactly what the multi-task strategies train on a group (the
  same backbone setting, heads, engine, learning rates and selection), with one task.
- `mtl-equal`: the members' losses summed with equal weights: the baseline tuned papers
  find hard to beat.
- `mtl-uncertainty` (Kendall et al. 2018): a learned log-variance s_i per task, loss
  Σ_i L_i / (2 e^{s_i}) + s_i / 2, the s_i trained with the model (at `lr`, no decay).
- `mtl-random` (random loss weighting, Lin et al. 2022): fresh weights each step, the
  softmax of standard normal draws (seeded by the run): a sanity check any method
  should beat.
- `mtl-pcgrad` (Yu et al. 2020) and `mtl-upgrad` (Quinton and Rey 2024): the members'
  gradients on the shared backbone aggregated, not summed, by torchjd's `PCGrad` and
  `UPGrad`: the Jacobian of the tasks' losses with respect to the backbone's parameters
  (`torchjd.autojac.backward`, a backward pass per task), then the aggregator. torchjd is used rather than a hand-written
  projection because it is maintained, tested against the papers' definitions, and
  offers both (and CAGrad, IMTL-G, MGDA...) behind one interface. The heads get their
  own task's gradient. With no trainable backbone parameter (`backbone = "frozen"`)
  there is nothing to aggregate and the losses are summed.

What trains is the `backbone` parameter: 'full' (every parameter, the backbone at
``lr × backbone_lr_scale``), 'frozen' (the heads only: feature extraction), 'partial'
(the last `train_last` layer groups and the heads) or 'lora' (low-rank adapters placed
as the `lora` strategy places them, and the heads; needs peft); frozen layers keep their
BatchNorm statistics. Checkpoints are chosen on the members' mean relative validation
improvement over their single-task runs (`tlbench.run.task_group`).

Importing this module stays light; torch and torchjd are imported inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tlbench
from tlbench.api import SPLITS, FitResult, Requirements, Strategy
from tlbench.errors import ParamError
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from .finetuning import BACKBONE_LR_SCALE

if TYPE_CHECKING:  # pragma: no cover
    import torch

MULTITASK_PARAMS: dict[str, Param] = {
    **ENGINE_PARAMS,
    **BACKBONE_LR_SCALE,
    "backbone": Param(str, "full", "what of the shared backbone trains: 'full', 'frozen' (the heads only), "
                                   "'partial' (its last train_last layer groups) or 'lora' (low-rank adapters, "
                                   "as the lora strategy puts them)",
                      choices=("full", "frozen", "partial", "lora")),
    "train_last": Param(int, 1, "with backbone 'partial': how many of the source's last layer groups train",
                        min=0),
    "lora_rank": Param(int, 8, "with backbone 'lora': the adapters' rank", min=1),
    "lora_alpha": Param(float, 8.0, "with backbone 'lora': the update is (alpha / rank) · B A", min=0),
    "lora_target_modules": Param(list, None, "with backbone 'lora': leaf names of the linear layers to adapt "
                                             "(default: found from the architecture)", items=str),
}
"""The knobs a multi-task strategy and its single-task comparison (`stl`) share."""


class Weighting:
    """How a step's per-task losses become the gradient: `backward(step, losses)` does the
    backward pass and returns the loss to log; `groups` are its own parameters' optimiser
    groups; `state()` goes into each epoch's history."""

    groups: list[dict] = []

    def backward(self, step, losses: dict[str, "torch.Tensor"]) -> "torch.Tensor":
        total = sum(losses.values())
        total.backward()
        return total.detach()

    def state(self) -> dict:
        return {}


class GroupStrategy(Strategy):
    """Train the source's backbone with one head per member of the run's task group (a
    plain run's one target is a group of one), through the engine, and predict every
    member's splits."""

    version = "1"
    params = MULTITASK_PARAMS
    requires = Requirements(tasks=None, multitask=True)
    compared_with = "stl"

    def check(self, params: dict, env) -> None:
        if params["backbone"] != "partial" and params["train_last"] != 1:
            raise ParamError(f"{self.name}: train_last applies to backbone 'partial' only")
        given = [key for key in ("lora_rank", "lora_alpha", "lora_target_modules")
                 if params[key] != MULTITASK_PARAMS[key].default]
        if params["backbone"] != "lora" and given:
            raise ParamError(f"{self.name}: {given[0]} applies to backbone 'lora' only")
        if params["backbone"] == "lora":
            from .hf_extra import require_hf_extra

            require_hf_extra(f"strategy {self.name!r} with backbone 'lora'", "peft", "transformers")

    def weighting(self, params: dict, group, model) -> Weighting:
        return Weighting()

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.training import (TaskGroup, count_params, frozen_stat_layers, multitask_model, train,
                                      train_mode_keeping_stats)

        from .finetuning import backbone_and_head_groups, learning_rates

        group = TaskGroup(run, getattr(run, "sampling", None))
        if group.sampling == "shared" and len(group.members) > 1:
            group.check_shared()
        model = multitask_model(group)
        resolved = {**learning_rates(params), **self._set_trainable(params, run, model)}
        keep = frozen_stat_layers(model)
        weighting = self.weighting(params, group, model)
        references = getattr(run, "references", {}) or {}
        outcome = train(group, model, backbone_and_head_groups(model, params) + weighting.groups, params,
                        set_train_mode=train_mode_keeping_stats(keep) if keep else None,
                        epoch_metrics=weighting.state, selection=group.selection(params, references),
                        backward=weighting.backward)
        predictions = {split: group.predict(model, split, params) for split in SPLITS}
        by_role = {role: {split: predictions[split][role] for split in SPLITS} for role in group.members}
        scored = getattr(run, "scored_role", next(iter(group.members)))
        trainable, total = count_params(model)
        info = {"resolved": resolved, "sampling": group.sampling, "members": list(group.members),
                "references": {role: group.reference(role, references) for role in group.members},
                "weighting": {"method": self.name, **weighting.state()}, "training": outcome.to_json()}
        result = FitResult(predictions=by_role[scored], trainable_params=trainable, total_params=total, info=info,
                           model=model, role_predictions={role: p for role, p in by_role.items() if role != scored})
        result.selection = outcome.selection if params["select"] == "best_val" else {"rule": "last", "reads": []}
        return result

    def _set_trainable(self, params: dict, run, model) -> dict:
        from .finetuning import layer_index, set_trainable

        mode = params["backbone"]
        if mode == "lora":
            return self._adapters(params, run, model)
        if mode == "full":
            set_trainable(model, lambda name, param: True)
            return {"backbone": mode}
        if mode == "frozen":
            set_trainable(model, lambda name, param: not name.startswith("backbone."))
            return {"backbone": mode}
        index, n_groups = layer_index(run), len(run.source.layer_groups)
        if params["train_last"] > n_groups:
            raise ParamError(f"{self.name}: train_last = {params['train_last']}, but the source has only "
                             f"{n_groups} layer groups")
        frozen = n_groups - params["train_last"]
        set_trainable(model, lambda name, param: not name.startswith("backbone.")
                      or index[name.removeprefix("backbone.")] >= frozen)
        return {"backbone": mode, "layer_groups": n_groups, "frozen_groups": frozen}


    def _adapters(self, params: dict, run, model) -> dict:
        """LoRA adapters in the shared backbone (the lora strategy's placement and init):
        they and the heads train, every pretrained weight stays frozen."""
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        from .finetuning import is_layer_mix, set_trainable
        from .lora import choose_targets

        backbone = model.backbone
        targets = choose_targets(backbone, params["lora_target_modules"])
        config = LoraConfig(r=params["lora_rank"], lora_alpha=params["lora_alpha"], target_modules=targets,
                            bias="none")
        inject_adapter_in_model(config, backbone)  # in place: the model's backbone is adapted
        adapted = sum(1 for module in backbone.modules() if isinstance(module, LoraLayer))
        set_trainable(model, lambda name, param: not name.startswith("backbone.") or ".lora_" in name
                      or is_layer_mix(run, name))
        return {"backbone": "lora", "target_modules": targets, "adapted_layers": adapted,
                "rank": params["lora_rank"], "scale": params["lora_alpha"] / params["lora_rank"]}


class SingleTask(GroupStrategy):
    name = "stl"
    description = "single-task learning: the multi-task recipe on one target (what multi-task runs are compared with)"
    requires = Requirements(tasks=None)
    compared_with = None


class EqualWeights(GroupStrategy):
    name = "mtl-equal"
    description = "multi-task learning: one backbone, a head per task, the tasks' losses summed"


class Uncertainty(Weighting):
    """Kendall et al.'s homoscedastic uncertainty weighting: a log-variance per task."""

    def __init__(self, roles: list[str], lr: float, device):
        import torch

        self.roles = roles
        self.log_vars = torch.nn.Parameter(torch.zeros(len(roles), device=device))
        self.groups = [{"params": [self.log_vars], "names": ["log_vars"], "lr": lr, "weight_decay": 0.0,
                        "label": "task_weights"}]

    def backward(self, step, losses):
        import torch

        terms = [losses[role] / (2 * torch.exp(self.log_vars[i])) + self.log_vars[i] / 2
                 for i, role in enumerate(self.roles) if role in losses]
        total = torch.stack(terms).sum()
        total.backward()
        return total.detach()

    def state(self) -> dict:
        return {"log_variance": {role: float(v) for role, v in zip(self.roles, self.log_vars.detach().cpu())}}


class UncertaintyWeights(GroupStrategy):
    name = "mtl-uncertainty"
    description = "multi-task learning with losses weighted by learned task uncertainty (Kendall et al. 2018)"

    def weighting(self, params: dict, group, model) -> Weighting:
        return Uncertainty(list(group.members), params["lr"], group.device)


class RandomLoss(Weighting):
    """Random loss weighting: softmax of standard normal draws, fresh every step."""

    def __init__(self, roles: list[str], seed: int):
        import torch

        self.roles = roles
        self.generator = torch.Generator().manual_seed(seed)

    def backward(self, step, losses):
        import torch

        weights = torch.softmax(torch.randn(len(self.roles), generator=self.generator), dim=0)
        total = sum(weights[i].item() * losses[role] for i, role in enumerate(self.roles) if role in losses)
        total.backward()
        return total.detach()


class RandomWeights(GroupStrategy):
    name = "mtl-random"
    description = "multi-task learning with random loss weights every step (a sanity check)"

    def weighting(self, params: dict, group, model) -> Weighting:
        return RandomLoss(list(group.members), group.seed)


class Aggregated(Weighting):
    """The tasks' gradients on the shared backbone aggregated by a torchjd aggregator; each
    head gets its own task's gradient.

    The Jacobian is taken with respect to the backbone's parameters (one row per task, by
    `torchjd.autojac.backward`), not through `mtl_backward`'s shared features: a backbone's
    feature maps are computed from one another, and features that depend on each other
    cannot be the cut `mtl_backward` differentiates through."""

    def __init__(self, aggregator, model):
        self.aggregator, self.model = aggregator, model
        self.aggregated = 0

    def backward(self, step, losses):
        import torch
        from torchjd.autojac import backward, jac_to_grad

        shared = [p for p in self.model.backbone.parameters() if p.requires_grad]
        if len(losses) < 2 or not shared:
            return super().backward(step, losses)
        total = sum(losses.values())
        heads = [p for p in self.model.head.parameters() if p.requires_grad]
        if heads:  # a head's parameters meet only their own task's loss
            torch.autograd.backward(total, inputs=heads, retain_graph=True)
        backward(list(losses.values()), inputs=shared)
        jac_to_grad(shared, self.aggregator)
        self.aggregated += 1
        return total.detach()

    def state(self) -> dict:
        return {"aggregator": type(self.aggregator).__name__, "aggregated_steps": self.aggregated}


class GradientStrategy(GroupStrategy):
    """A multi-task strategy that aggregates the tasks' gradients: every step needs every
    task's loss, so a group sampled 'proportional' (one task per step) is left out."""

    requires = Requirements(tasks=None, multitask=True, samplings=("shared", "round-robin"))

    def aggregator(self):
        raise NotImplementedError

    def weighting(self, params: dict, group, model) -> Weighting:
        return Aggregated(self.aggregator(), model)


class PCGrad(GradientStrategy):
    name = "mtl-pcgrad"
    description = "multi-task learning with conflicting task gradients projected (PCGrad, via torchjd)"

    def aggregator(self):
        from torchjd.aggregation import PCGrad as Aggregator

        return Aggregator()


class UPGrad(GradientStrategy):
    name = "mtl-upgrad"
    description = "multi-task learning with task gradients aggregated by UPGrad (Jacobian descent, via torchjd)"

    def aggregator(self):
        from torchjd.aggregation import UPGrad as Aggregator

        return Aggregator()


@tlbench.hookimpl
def tlbench_register_strategies(register):
    for strategy in (SingleTask(), EqualWeights(), UncertaintyWeights(), RandomWeights(), PCGrad(), UPGrad()):
        register(strategy)
