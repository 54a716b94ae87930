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

from tlbench.api import FeatureLevel, SourceModel

from .image_examples import to_rgb_uint8


def create(name: str, *, pretrained: bool, num_classes: int | None = None, file: str | None = None,
           input_size: int | None = None, **kwargs) -> nn.Module:
    """A timm model; with `file`, pretrained weights from that local file.

    Without `num_classes`, a model loaded from a file gets the classifier the file has
    (any number of classes, or none), so fine-tuned checkpoints load strictly too. With
    `input_size`, models built for a fixed input size (ViTs) are built for that size
    (timm resamples their position embeddings); others take any size as they are.
    """
    import timm

    options: dict[str, Any] = dict(kwargs)
    if pretrained and file:
        overlay = {"file": str(file)}
        if num_classes is None:
            num_classes = file_num_classes(name, file)
            overlay["num_classes"] = num_classes
        options["pretrained_cfg_overlay"] = overlay
    if num_classes is not None:
        options["num_classes"] = num_classes
    if input_size:
        try:
            return timm.create_model(name, pretrained=pretrained, img_size=input_size, **options)
        except TypeError as exc:  # a model without a fixed input size takes no img_size
            if "img_size" not in str(exc):
                raise
    return timm.create_model(name, pretrained=pretrained, **options)


def load_weights_file(file: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a .safetensors, .pth or .bin file; pickles load with weights_only=True,
    so a file that would run code when unpickled is refused."""
    from timm.models import load_state_dict

    state = load_state_dict(str(file), weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("it does not hold a state dict of tensors")
    return state


def _classifier_names(name: str) -> list[str]:
    from timm.models import get_pretrained_cfg

    arch = name.split(":")[-1]
    cfg = get_pretrained_cfg(arch, allow_unregistered=True) if arch else None
    classifier = (cfg.classifier if cfg is not None else None) or "head"
    return [classifier] if isinstance(classifier, str) else list(classifier)


def file_num_classes(name: str, file: str | Path) -> int:
    """How many classes the classifier in a weights file has (0 when it has none)."""
    key = f"{_classifier_names(name)[0]}.weight"
    if str(file).endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(file), "pt") as handle:
            if key not in handle.keys():
                return 0
            return int(handle.get_slice(key).get_shape()[0])
    state = load_weights_file(file)
    return int(state[key].shape[0]) if key in state else 0


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


class ImageEncoder:
    """The model's eval preprocessing (resize, crop, normalise) as batched tensor ops.

    Follows timm's eval transform: the image is scaled to input size / crop_pct, keeping
    its aspect ratio ('center'), not keeping it ('squash'), or fitting its longest edge
    ('border', padded with the mean colour), then centre-cropped to the input size.
    Plain data only, so it pickles into DataLoader workers and survives a fork.
    """

    def __init__(self, data_config: dict):
        self.config = dict(data_config)
        self.size = tuple(data_config["input_size"][1:])
        self.crop_pct = float(data_config.get("crop_pct") or 1.0)
        self.crop_mode = data_config.get("crop_mode") or "center"
        self.interpolation = data_config.get("interpolation", "bilinear")
        self.mean = torch.tensor(data_config["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(data_config["std"]).view(1, 3, 1, 1)

    def whole(self) -> "ImageEncoder":
        """The same preprocessing with the whole image resized to the input size (no crop,
        the aspect ratio not kept): what dense tasks read, so that outputs map back onto
        each image by resizing (`SourceModel.encode_whole`)."""
        return ImageEncoder({**self.config, "crop_pct": 1.0, "crop_mode": "squash"})

    def identity(self) -> dict:
        out = {"size": self.size, "crop_pct": self.crop_pct, "interpolation": self.interpolation,
               "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}
        if self.crop_mode != "center":
            out["crop_mode"] = self.crop_mode
        return out

    def _resize(self, batch: torch.Tensor) -> torch.Tensor:
        import math

        import torchvision.transforms.v2.functional as F
        from torchvision.transforms import InterpolationMode

        mode = {"bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}.get(
            self.interpolation, InterpolationMode.BILINEAR)
        height, width = self.size
        scale = (math.floor(height / self.crop_pct), math.floor(width / self.crop_pct))
        current = tuple(batch.shape[-2:])
        if self.crop_mode == "squash":  # each edge to its scale; the aspect ratio changes
            target = list(scale)
        else:  # shortest edge fitted ('center'), or longest edge fitted and padded ('border')
            fit = min if self.crop_mode == "border" else max
            ratio = fit(scale[0] / current[0], scale[1] / current[1])
            target = [round(current[0] * ratio), round(current[1] * ratio)]
        if target != list(current):
            batch = F.resize(batch, target, interpolation=mode, antialias=True)
            if mode is InterpolationMode.BICUBIC:
                batch = batch.clamp(0, 255)  # as an 8-bit image would be
        return batch

    def __call__(self, examples: Sequence[Any]) -> torch.Tensor:
        import torchvision.transforms.v2.functional as F

        arrays = [to_rgb_uint8(example) for example in examples]
        out = torch.empty((len(arrays), 3, *self.size), dtype=torch.float32)
        by_shape: dict[tuple, list[int]] = {}
        for i, array in enumerate(arrays):
            by_shape.setdefault(array.shape, []).append(i)
        for indices in by_shape.values():  # same-sized images are resized in one call
            batch = torch.from_numpy(np.stack([arrays[i] for i in indices])).permute(0, 3, 1, 2)
            batch = (self._resize(batch.float()) / 255.0 - self.mean) / self.std
            # cropping after normalising pads 'border' images with the mean colour (zero)
            out[indices] = F.center_crop(batch, list(self.size))
        return out


class PreLogits(nn.Module):
    """A timm model without its classifier: images to pre-logits features, or to the
    feature maps of every stage (timm's `forward_intermediates`, NCHW)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)

    def forward_feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model.forward_intermediates(images, intermediates_only=True))


def feature_levels(model: nn.Module) -> list[FeatureLevel] | None:
    """Channels and strides of `forward_intermediates`' maps, from timm's feature info."""
    info = getattr(model, "feature_info", None)
    if not hasattr(model, "forward_intermediates") or not isinstance(info, list) or not info:
        return None
    try:
        return [FeatureLevel(channels=int(level["num_chs"]), stride=int(level["reduction"])) for level in info]
    except (KeyError, TypeError, ValueError):
        return None


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
                       encode_whole=encoder.whole(),
                       layer_groups=groups, weights_id=state_digest(backbone), pretrained=pretrained,
                       preprocessing_id=str(sorted(encoder.identity().items())), source_head=source_head,
                       feature_levels=feature_levels(model),
                       meta={**meta, "data_config": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in data_config.items()}})


def data_config(model: nn.Module, input_size: int | None = None) -> dict:
    import timm

    config = timm.data.resolve_model_data_config(model)
    if input_size:
        config["input_size"] = (3, input_size, input_size)
        config["crop_pct"] = 1.0
    return config
