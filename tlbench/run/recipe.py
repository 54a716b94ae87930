"""The training engine's knobs, with their defaults (torch-free, so plugins can
declare parameter schemas without importing torch at registration).

Every fine-tuning strategy takes these knobs with these defaults, so two strategies
compared in a suite differ only in what the strategy itself does. A strategy whose
method replaces a knob (L2-SP replaces weight decay by its own penalty) changes that
default with `engine_params` and says so in its own parameter help.
"""

from __future__ import annotations

from dataclasses import replace

from ..params import Param

ENGINE_PARAMS: dict[str, Param] = {
    "epochs": Param(int, 20, "passes over the training split", min=1),
    "batch_size": Param(int, 32, "examples per optimisation step", min=1),
    "optimizer": Param(str, "adamw", "adamw or sgd", choices=("adamw", "sgd")),
    "lr": Param(float, 1e-3, "peak learning rate (of the head; see the strategy for other groups)", min=0),
    "momentum": Param(float, 0.9, "SGD momentum (nesterov); ignored by adamw", min=0, max=1),
    "weight_decay": Param(float, 0.05, "decoupled weight decay; never applied to norms and biases", min=0),
    "warmup_epochs": Param(float, 1.0, "linear warm-up length before the per-step cosine decay to 0", min=0),
    "label_smoothing": Param(float, 0.0, "cross-entropy label smoothing", min=0, max=1),
    "clip_grad_norm": Param(float, None, "clip the global gradient norm to this value", min=0),
    "patience": Param(int, None, "stop after this many epochs without a better val accuracy", min=1),
    "select": Param(str, "best_val", "keep the checkpoint with the best val accuracy, or the last",
                    choices=("best_val", "last")),
    "amp": Param(bool, True, "bf16 autocast on CUDA (no effect on CPU)"),
    "channels_last": Param(bool, True, "channels-last memory format for convolutional models on CUDA"),
    "num_workers": Param(int, 0, "data-loader workers for splits too large to keep encoded", min=0, affects_results=False),
}
"""Knobs of the engine; strategies include them in their own parameter schemas."""


def engine_params(**defaults) -> dict[str, Param]:
    """`ENGINE_PARAMS` with some defaults changed (for strategies whose method sets them)."""
    unknown = sorted(set(defaults) - set(ENGINE_PARAMS))
    if unknown:
        raise KeyError(f"not engine parameters: {', '.join(unknown)}")
    return {name: replace(param, default=defaults[name]) if name in defaults else param
            for name, param in ENGINE_PARAMS.items()}


def engine_defaults(**overrides) -> dict:
    """Resolved engine knobs: every default, with `overrides` applied."""
    values = {name: param.default for name, param in ENGINE_PARAMS.items()}
    values.update(overrides)
    return values
