"""The training engine as plugins use it: the public surface of `tlbench.run`.

Strategies build a model and optimiser groups and call `train`; the engine's knobs
(`ENGINE_PARAMS`) go into their parameter schemas. Importing this module stays light
(the knobs are torch-free): everything that needs torch is imported on first use, so
a plugin may import from here at module level and `tlbench list` still does not load
torch. What plugins may import from tlbench is this module, `tlbench.api`,
`tlbench.params`, `tlbench.errors`, `tlbench.hashing` and `tlbench.testing`;
everything else is tlbench's own and may move.
"""

from __future__ import annotations

import importlib
from typing import Any

from .run.recipe import ENGINE_PARAMS, engine_defaults, engine_params

_LAZY = {
    # the loop
    "train": "tlbench.run.engine", "evaluate": "tlbench.run.engine", "predict": "tlbench.run.engine",
    "Step": "tlbench.run.engine", "TrainResult": "tlbench.run.engine", "TaskModel": "tlbench.run.engine",
    "Selection": "tlbench.run.engine", "validation_selection": "tlbench.run.engine",
    # parameters and what trains
    "param_groups": "tlbench.run.engine", "count_params": "tlbench.run.engine",
    "freeze_outside": "tlbench.run.engine", "stat_layers": "tlbench.run.engine",
    "frozen_stat_layers": "tlbench.run.engine", "train_mode_keeping_stats": "tlbench.run.engine",
    # batches, seeds, devices, budgets
    "SplitBatches": "tlbench.run.batches", "index_inputs": "tlbench.run.batches",
    "seed_everything": "tlbench.run.seeding", "resolve_device": "tlbench.run.execute",
    "Budget": "tlbench.run.budget", "device_name": "tlbench.provenance",
    # task groups (multi-task learning)
    "TaskGroup": "tlbench.run.task_group", "MultiTaskModel": "tlbench.run.task_group",
    "multitask_model": "tlbench.run.task_group", "ByRole": "tlbench.run.task_group",
    # training outside a suite's runs
    "supervised_target": "tlbench.run.context",
}

__all__ = ["ENGINE_PARAMS", "engine_defaults", "engine_params", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tlbench.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
