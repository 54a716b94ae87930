"""Seeded random weights of a timm architecture in a local file: the benchmarks' source
weights, with no download."""

from __future__ import annotations

from pathlib import Path


def save_random_weights(model: str, folder: Path, seed: int = 0) -> Path:
    """`<folder>/<model>.safetensors` holding `model`'s weights drawn with `seed`."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    state = timm.create_model(model, pretrained=False).state_dict()
    path = folder / f"{model}.safetensors"
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path
