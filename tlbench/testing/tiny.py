"""The kit's own tiny source and target: a small CNN with fixed "pretrained" weights and
feature maps, and synthetic bright-band images; enough for a strategy to train in a
second, never registered as plugins."""

from __future__ import annotations

import functools

from ..api import SPLITS, Env, FeatureLevel, Source, SourceCapabilities, SourceModel, Split, Splits, Target, TargetData
from ..params import Param


class TinySource(Source):
    """A small convolutional image backbone (`stem` and `block`, conv with batch norm,
    then a linear `proj`), with feature maps: the kit's default source for strategy and
    task checks. Never registered."""

    name = "tlbench-testing-tiny-cnn"
    version = "1"
    description = "a tiny CNN for conformance checks (weights from a fixed seed)"
    params = {"width": Param(int, 4, "channels of the first block", min=1),
              "input_size": Param(int, 12, "images are resized to input_size x input_size", min=4)}

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"), source_head=None)

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        import torch
        from torch import nn

        width, size = params["width"], params["input_size"]
        head = None
        if pretrained:  # "pretrained" weights: the same every time, whatever the run's seed
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                backbone = tiny_cnn(width)
                head = nn.Linear(2 * width, 5)  # its "source task" classifier, for estimators like LEEP
        else:  # from torch's generator, which the caller has seeded
            backbone = tiny_cnn(width)
        groups = [[f"{part}.{name}" for name, _ in module.named_parameters()]
                  for part, module in backbone.named_children() if any(True for _ in module.parameters())]
        return SourceModel(backbone=backbone, feature_dim=2 * width, modality="image",
                           encode=functools.partial(encode_images, size=size), layer_groups=groups,
                           weights_id=f"tiny-cnn:{width}:{'seed1234' if pretrained else 'random'}",
                           preprocessing_id=f"tiny:{size}", pretrained=pretrained, source_head=head,
                           feature_levels=[FeatureLevel(width, 1), FeatureLevel(2 * width, 2)])


def tiny_cnn(width: int):
    """`stem` (conv, batch norm, ReLU), `block` (the same at stride 2), average pooling and
    a linear `proj`; its feature maps are the stem's and the block's outputs."""
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                                       nn.BatchNorm2d(2 * width), nn.ReLU())
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.proj = nn.Linear(2 * width, 2 * width)

        def forward(self, images):
            return self.proj(self.pool(self.block(self.stem(images))))

        def forward_feature_maps(self, images):
            stem = self.stem(images)
            return [stem, self.block(stem)]

    return TinyCNN()


def encode_images(examples: list, size: int):
    """Images (uint8 arrays of any size, greyscale or RGB, or PIL images) to a
    (batch, 3, size, size) float tensor, each resized on its own."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    out = []
    for example in examples:
        array = np.array(example.convert("RGB") if hasattr(example, "convert") else example)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        image = torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1)[None].float()
        out.append(F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False))
    return (torch.cat(out) / 255.0 - 0.5) / 0.5


class TinyTarget(Target):
    """Synthetic images whose class is which horizontal band is bright, plus noise: the
    kit's default target for strategy checks. Never registered."""

    name = "tlbench-testing-tiny-bands"
    version = "1"
    description = "synthetic bright-band images for conformance checks"
    params = {"classes": Param(int, 3, "number of classes (bands)", min=2, max=8),
              "per_class": Param(int, 8, "images per class, split 1/2 train, 1/4 val, rest test", min=4)}

    def load(self, params: dict, env: Env) -> TargetData:
        return _BandsData(params["classes"], params["per_class"])


class _BandsData(TargetData):
    modality = "image"

    def __init__(self, classes: int, per_class: int):
        import numpy as np

        rng = np.random.default_rng(1234)
        size = 4 * classes
        images, labels = [], []
        for label in range(classes):
            for _ in range(per_class):
                image = rng.integers(0, 96, (size, size, 3), dtype=np.uint8)
                image[4 * label:4 * label + 4] += 128
                images.append(image)
                labels.append(label)
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.num_classes, self.per_class = classes, per_class
        self.class_names = [f"band{i}" for i in range(classes)]

    def splits(self, seed: int) -> Splits:
        import numpy as np

        rng = np.random.default_rng(seed)
        n_train, n_val = self.per_class // 2, max(1, self.per_class // 4)
        parts: dict[str, list[int]] = {name: [] for name in SPLITS}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label)).tolist()
            parts["train"] += members[:n_train]
            parts["val"] += members[n_train:n_train + n_val]
            parts["test"] += members[n_train + n_val:]
        made = {name: Split([self.images[i] for i in sorted(ix)], self.labels[sorted(ix)])
                for name, ix in parts.items()}
        return Splits(**made)
