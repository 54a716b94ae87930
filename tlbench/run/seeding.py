"""Seeding and determinism for one run."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all CUDA devices too); optionally turn on torch's
    deterministic algorithms, with the cuBLAS workspace setting they need on CUDA.

    Deterministic mode is ``warn_only``: an operation without a deterministic CUDA kernel
    (the backward pass of adaptive average pooling, in most CNN heads) warns instead of
    failing every run of that model; such runs are reproducible up to those operations.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
