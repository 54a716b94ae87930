"""Strategy `partial-finetune`: freeze the first layer groups, fine-tune the rest.

The source's layer groups run from the stem (group 0) to the top block. Either the
first `freeze_first` groups are frozen, or all but the last `train_last` are; the new
head always trains. Frozen parameters are never handed to the optimiser, so they stay
bitwise unchanged, and with `freeze_bn_stats` the BatchNorm layers of frozen groups run
in eval mode, so their running statistics stay fixed too.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.errors import ParamError
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from .finetuning import ANY_TASK

DEFAULT_TRAIN_LAST = 1


class PartialFinetune(Strategy):
    name = "partial-finetune"
    version = "1"
    description = "freeze the source's first layer groups; fine-tune the last ones and a new head"
    requires = ANY_TASK
    params = {
        **ENGINE_PARAMS,
        "train_last": Param(int, None, f"train the last K layer groups (K = {DEFAULT_TRAIN_LAST} when "
                                       "neither this nor freeze_first is given)", min=0),
        "freeze_first": Param(int, None, "freeze the first N layer groups (instead of train_last)", min=0),
        "freeze_bn_stats": Param(bool, True, "keep the BatchNorm running statistics of frozen groups "
                                             "fixed (those layers run in eval mode)"),
    }

    def check(self, params: dict, env) -> None:
        if params["train_last"] is not None and params["freeze_first"] is not None:
            raise ParamError("partial-finetune: give train_last or freeze_first, not both")

    @staticmethod
    def frozen_groups(params: dict, n_groups: int) -> int:
        """How many leading layer groups `params` freeze, for a source with `n_groups`."""
        for key in ("freeze_first", "train_last"):
            if params[key] is not None and params[key] > n_groups:
                raise ParamError(f"partial-finetune: {key} = {params[key]}, but the source has only "
                                 f"{n_groups} layer groups")
        if params["freeze_first"] is not None:
            return params["freeze_first"]
        train_last = DEFAULT_TRAIN_LAST if params["train_last"] is None else params["train_last"]
        return max(0, n_groups - train_last)

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.training import frozen_stat_layers, train_mode_keeping_stats

        from .finetuning import backbone_and_head_groups, finetune, layer_index, new_model, set_trainable

        self.check(params, None)
        index = layer_index(run)
        n_groups = len(run.source.layer_groups)
        frozen = self.frozen_groups(params, n_groups)
        model = new_model(run)
        set_trainable(model, lambda name, param: not name.startswith("backbone.")
                      or index[name.removeprefix("backbone.")] >= frozen)
        keep = frozen_stat_layers(model) if params["freeze_bn_stats"] else []
        groups = backbone_and_head_groups(model, params)
        resolved = {"layer_groups": n_groups, "frozen_groups": frozen, "trained_groups": n_groups - frozen,
                    "frozen_bn_stat_layers": len(keep)}
        return finetune(run, model, groups, params, resolved,
                        set_train_mode=train_mode_keeping_stats(keep) if keep else None)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(PartialFinetune())
