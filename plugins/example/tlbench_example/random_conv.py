"""Source `random-conv`: an untrained convolutional network with fixed random weights.

Random convolutional features are the classic lower bound of transfer learning: a
source that knows nothing about any data set. The "pretrained" weights are drawn from
``weights_seed``, so they are the same in every run and process; the from-scratch
twin (``pretrained=False``) draws them from torch's generator, which tlbench seeds
per run.
"""

from __future__ import annotations

import tlbench
from tlbench.api import Env, Source, SourceModel
from tlbench.params import Param


def build_network(width: int, depth: int):
    """`depth` blocks of conv 3x3 -> ReLU -> 2x2 max-pool, then global average pooling."""
    from torch import nn

    blocks, channels = [], 3
    for _ in range(depth):
        blocks.append(nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
        channels = width
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class ImageEncoder:
    """Raw images (uint8 arrays, greyscale or RGB, or PIL images) to a normalised
    (batch, 3, size, size) tensor; each image is resized on its own."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, examples):
        import numpy as np
        import torch
        import torch.nn.functional as F

        images = []
        for example in examples:
            array = np.array(example.convert("RGB") if hasattr(example, "convert") else example, dtype=np.uint8)
            if array.ndim == 2:
                array = np.repeat(array[:, :, None], 3, axis=2)
            image = torch.from_numpy(array[:, :, :3]).permute(2, 0, 1)[None].float() / 255.0
            images.append(F.interpolate(image, size=(self.size, self.size), mode="bilinear",
                                        align_corners=False))
        return (torch.cat(images) - 0.5) / 0.25


class RandomConv(Source):
    name = "random-conv"
    version = "1"
    description = "an untrained CNN with fixed random weights: the random-features baseline (no download)"
    params = {
        "width": Param(int, 32, "channels of every block (the feature size)", min=1),
        "depth": Param(int, 2, "number of conv blocks", min=1, max=5),
        "input_size": Param(int, 32, "images are resized to input_size x input_size", min=8),
        "weights_seed": Param(int, 0, "seed the fixed random weights are drawn from"),
    }

    def architecture(self, params: dict) -> dict:
        return {key: params[key] for key in ("width", "depth", "input_size")}

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        import torch

        if pretrained:
            with torch.random.fork_rng(devices=[]):  # leave the run's generator untouched
                torch.manual_seed(params["weights_seed"])
                backbone = build_network(params["width"], params["depth"])
            weights_id = f"random-conv:seed{params['weights_seed']}:w{params['width']}:d{params['depth']}"
        else:
            backbone = build_network(params["width"], params["depth"])
            weights_id = "random-conv:run-seed"
        groups = [[f"{i}.{name}" for name, _ in block.named_parameters()]
                  for i, block in enumerate(backbone[:params["depth"]])]
        return SourceModel(backbone=backbone, feature_dim=params["width"], modality="image",
                           encode=ImageEncoder(params["input_size"]), layer_groups=groups,
                           weights_id=weights_id, preprocessing_id=f"resize{params['input_size']}-norm0.5/0.25",
                           pretrained=False, meta={"weights": weights_id})


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(RandomConv())
