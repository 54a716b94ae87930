"""Strategy `lora` (Hu et al. 2022) through the peft library: low-rank adapters on the
attention projections, plus the new head; every pretrained weight stays frozen.

Each adapted linear layer W (out × in) gains ``(alpha / rank) · B A`` with A (rank × in)
and B (out × rank), B starting at zero, so training starts from the pretrained model
and adds ``rank · (in + out)`` parameters per layer. The adapted layers are found by
name: timm ViTs' fused ``qkv``, BERT-style ``query``/``value``, ``q_proj``/``v_proj`` or
DistilBERT's ``q_lin``/``v_lin`` — or whatever `target_modules` names.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.errors import ParamError
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from .hf_extra import require_hf_extra

from .finetuning import ANY_TASK

ATTENTION_TARGETS = (("qkv",), ("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"))
"""Leaf names of attention projections, by model family, in the order they are tried."""


def linear_leaf_names(module) -> set[str]:
    from torch import nn

    return {name.rpartition(".")[2] for name, child in module.named_modules() if isinstance(child, nn.Linear)}


def choose_targets(backbone, given: list[str] | None) -> list[str]:
    """The leaf names of the linear layers to adapt: `given`, or the first known family."""
    leaves = linear_leaf_names(backbone)
    if given:
        unknown = [name for name in given if name not in leaves]
        if unknown:
            raise ParamError(f"lora: target_modules: the source has no linear layer named {unknown[0]!r}")
        return list(given)
    for family in ATTENTION_TARGETS:
        if all(name in leaves for name in family):
            return list(family)
    raise ParamError("lora: found no attention projections (qkv, query/value, q_proj/v_proj, q_lin/v_lin) "
                     "in the source; name the layers to adapt with target_modules")


class LoRA(Strategy):
    name = "lora"
    version = "1"
    description = "low-rank adapters (peft) on the attention projections, plus a new head"
    requires = ANY_TASK
    params = {
        **ENGINE_PARAMS,
        "rank": Param(int, 8, "rank r of each adapter", min=1),
        "alpha": Param(float, 8.0, "adapter scale numerator: the update is (alpha / rank) · B A", min=0),
        "dropout": Param(float, 0.0, "dropout on the adapters' inputs", min=0, max=1),
        "target_modules": Param(list, None, "leaf names of the linear layers to adapt "
                                            "(default: found from the architecture)", items=str),
    }

    def check(self, params: dict, env) -> None:
        require_hf_extra("strategy 'lora'", "peft", "transformers")

    def fit(self, params: dict, run) -> FitResult:
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        from .finetuning import backbone_and_head_groups, finetune, is_layer_mix, new_model, set_trainable

        backbone = run.source.backbone
        targets = choose_targets(backbone, params["target_modules"])
        for param in backbone.parameters():
            param.requires_grad_(False)
        config = LoraConfig(r=params["rank"], lora_alpha=params["alpha"], lora_dropout=params["dropout"],
                            target_modules=targets, bias="none")
        backbone = inject_adapter_in_model(config, backbone)
        adapted = [module for module in backbone.modules() if isinstance(module, LoraLayer)]
        check_adapters_used(run, backbone, adapted)
        model = new_model(run)
        set_trainable(model, lambda name, param: name.startswith("head.") or ".lora_" in name
                      or is_layer_mix(run, name))
        groups = backbone_and_head_groups(model, params, backbone_label="adapters")
        resolved = {"target_modules": targets, "adapted_layers": len(adapted), "rank": params["rank"],
                    "alpha": params["alpha"], "scale": params["alpha"] / params["rank"]}
        return finetune(run, model, groups, params, resolved)


def check_adapters_used(run, backbone, adapted) -> None:
    """Fail early if a model reads an adapted layer's weight directly (bypassing the adapter):
    one forward pass on two training examples must go through every adapted layer."""
    import torch

    from tlbench.training import index_inputs

    called: set[int] = set()
    hooks = [module.register_forward_hook(lambda m, args, out: called.add(id(m))) for module in adapted]
    try:
        inputs, _ = next(iter(run.batches("train").batches()))
        backbone.to(run.device).eval()
        with torch.no_grad():
            backbone(index_inputs(inputs, torch.arange(min(2, len(run.split("train"))), device=run.device)))
    finally:
        for hook in hooks:
            hook.remove()
    unused = sum(1 for module in adapted if id(module) not in called)
    if unused:
        raise ParamError(f"lora: {unused} of {len(adapted)} adapted layers are bypassed by the model's forward "
                         f"pass; choose other target_modules")


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LoRA())
