"""The training engine's knobs, with their defaults (torch-free, so plugins can
declare parameter schemas without importing torch at registration)."""

from .params import Param

ENGINE_PARAMS: dict[str, Param] = {
    "epochs": Param(int, 20, "passes over the training split", min=1),
    "batch_size": Param(int, 32, "examples per optimisation step", min=1),
    "optimizer": Param(str, "adamw", "adamw or sgd", choices=("adamw", "sgd")),
    "lr": Param(float, 1e-3, "peak learning rate", min=0),
    "momentum": Param(float, 0.9, "SGD momentum (nesterov)", min=0, max=1),
    "weight_decay": Param(float, 0.05, "decoupled weight decay; never applied to norms and biases", min=0),
    "warmup_epochs": Param(float, 1.0, "linear warm-up length before the cosine decay", min=0),
    "label_smoothing": Param(float, 0.0, "cross-entropy label smoothing", min=0, max=1),
    "clip_grad_norm": Param(float, None, "clip the global gradient norm to this value", min=0),
    "patience": Param(int, None, "stop after this many evaluations without a better val accuracy", min=1),
    "select": Param(str, "best_val", "keep the checkpoint with the best val accuracy, or the last",
                    choices=("best_val", "last")),
    "amp": Param(bool, True, "bf16 autocast on CUDA (no effect on CPU)"),
    "channels_last": Param(bool, True, "channels-last memory format for image models on CUDA"),
    "num_workers": Param(int, 0, "data-loader workers for splits too large to keep encoded", min=0),
}
"""Knobs of the engine; strategies include them in their own parameter schemas."""
