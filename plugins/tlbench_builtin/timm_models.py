"""timm models as tlbench sources: creation, weights, preprocessing and layer groups.

Shared by the `timm` source (hub or local weights) and the `pretrain` source (weights
trained on the spot). Imported only when a source is built, never at registration.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from tlbench.api import SourceModel


def create(name: str, *, pretrained: bool, num_classes: int | None = None, file: str | None = None,
           **kwargs) -> nn.Module:
    """A timm model; with `file`, pretrained weights from that local file."""
    import timm

    options: dict[str, Any] = dict(kwargs)
    if num_classes is not None:
        options["num_classes"] = num_classes
    if pretrained and file:
        options["pretrained_cfg_overlay"] = {"file": str(file)}
    return timm.create_model(name, pretrained=pretrained, **options)


def state_digest(module: nn.Module) -> str:
    """Hash of every parameter and buffer: the weights' identity, whatever their origin."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous()
        digest.update(str(data.dtype).encode() + str(tuple(data.shape)).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def layer_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names from the stem to the last block, by timm's own group matcher."""
    from timm.models import group_parameters

    names = {name for name, _ in model.named_parameters()}
    try:
        grouped = group_parameters(model, model.group_matcher(coarse=False))
        groups = [[n for n in members if n in names] for _, members in sorted(grouped.items())]
    except (AttributeError, NotImplementedError):
        groups = [[n for n in names]]
    groups = [g for g in groups if g]
    covered = {n for g in groups for n in g}
    leftover = sorted(names - covered)
    if leftover:  # parameters the matcher missed go with the last group
        groups[-1].extend(leftover)
    return groups


def to_rgb_uint8(example: Any) -> np.ndarray:
    """An image example (array, PIL image or file path) as an HxWx3 uint8 array."""
    from PIL import Image

    if isinstance(example, (str, Path)):
        with Image.open(example) as image:
            return np.asarray(image.convert("RGB"))
    if isinstance(example, Image.Image):
        return np.asarray(example.convert("RGB"))
    array = np.asarray(example)
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {array.shape}")
    return array


class ImageEncoder:
    """The model's eval preprocessing (resize, centre crop, normalise) as batched tensor ops."""

    def __init__(self, data_config: dict):
        self.size = tuple(data_config["input_size"][1:])
        self.crop_pct = float(data_config.get("crop_pct") or 1.0)
        self.interpolation = data_config.get("interpolation", "bilinear")
        self.mean = torch.tensor(data_config["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(data_config["std"]).view(1, 3, 1, 1)

    def identity(self) -> dict:
        return {"size": self.size, "crop_pct": self.crop_pct, "interpolation": self.interpolation,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def _resize_crop(self, batch: torch.Tensor) -> torch.Tensor:
        import torchvision.transforms.v2.functional as F
        from torchvision.transforms import InterpolationMode

        mode = {"bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}.get(
            self.interpolation, InterpolationMode.BILINEAR)
        height, width = self.size
        scale = (int(height / self.crop_pct), int(width / self.crop_pct))
        if batch.shape[-2:] != scale:
            short = min(scale)
            batch = F.resize(batch, [short] if height == width else list(scale), interpolation=mode,
                             antialias=True)
        return F.center_crop(batch, [height, width])

    def __call__(self, examples: Sequence[Any]) -> torch.Tensor:
        arrays = [to_rgb_uint8(example) for example in examples]
        out = torch.empty((len(arrays), 3, *self.size), dtype=torch.float32)
        by_shape: dict[tuple, list[int]] = {}
        for i, array in enumerate(arrays):
            by_shape.setdefault(array.shape, []).append(i)
        for indices in by_shape.values():  # same-sized images are resized in one call
            batch = torch.from_numpy(np.stack([arrays[i] for i in indices])).permute(0, 3, 1, 2)
            batch = self._resize_crop(batch.float()) / 255.0
            out[indices] = (batch - self.mean) / self.std
        return out


class PreLogits(nn.Module):
    """A timm model without its classifier: images to pre-logits features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)


def source_model(model: nn.Module, *, pretrained: bool, data_config: dict, meta: dict) -> SourceModel:
    """Wrap a timm model (with its own classifier still on) as a tlbench `SourceModel`."""
    head = model.get_classifier()
    source_head = copy.deepcopy(head) if pretrained and isinstance(head, nn.Module) \
        and any(True for _ in head.parameters()) else None
    model.reset_classifier(0)
    backbone = PreLogits(model)
    encoder = ImageEncoder(data_config)
    feature_dim = getattr(model, "head_hidden_size", None) or model.num_features
    groups = [[f"model.{name}" for name in group] for group in layer_groups(model)]
    return SourceModel(backbone=backbone, feature_dim=int(feature_dim), modality="image", encode=encoder,
                       layer_groups=groups, weights_id=state_digest(backbone), pretrained=pretrained,
                       preprocessing_id=str(sorted(encoder.identity().items())), source_head=source_head,
                       meta={**meta, "data_config": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in data_config.items()}})


def data_config(model: nn.Module, input_size: int | None = None) -> dict:
    import timm

    config = timm.data.resolve_model_data_config(model)
    if input_size:
        config["input_size"] = (3, input_size, input_size)
        config["crop_pct"] = 1.0
    return config
