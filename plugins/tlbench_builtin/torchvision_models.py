"""torchvision detection and segmentation networks as tlbench `SourceModel`s: the
backbone split from the neck and head, which come back as a task's head with a fresh
class-specific predictor (`SourceModel.task_heads`). See `torchvision_source`."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from tlbench.api import FeatureLevel, SourceModel

from .timm_models import ImageEncoder, state_digest

PRIOR = 0.01
"""The foreground probability a fresh classification layer starts at (FCOS and
RetinaNet initialise theirs so, against the flood of background locations)."""


class Backbone(nn.Module):
    """A torchvision backbone body (an IntermediateLayerGetter): its maps, in order, and
    their last one average-pooled for tasks that read one vector."""

    def __init__(self, body: nn.Module, keys: list[str]):
        super().__init__()
        self.body, self.keys = body, list(keys)

    def forward_feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(images)
        return [out[key] for key in self.keys]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_maps(images)[-1].mean(dim=(2, 3))


class SegmentationHead(nn.Module):
    """A torchvision segmentation decoder on the backbone's last map, logits upsampled
    to the input's size (what the `segmentation` task's objective reads)."""

    def __init__(self, classifier: nn.Module, stride: int):
        super().__init__()
        self.classifier, self.stride = classifier, int(stride)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        last = maps[-1]
        logits = self.classifier(last.float())
        size = (last.shape[-2] * self.stride, last.shape[-1] * self.stride)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def fresh_classifier(head: nn.Module, num_classes: int) -> None:
    """Replace an FCOS or RetinaNet classification head's last convolution for
    `num_classes`, initialised as torchvision initialises it."""
    old = head.cls_logits
    new = nn.Conv2d(old.in_channels, head.num_anchors * num_classes, kernel_size=3, stride=1, padding=1)
    nn.init.normal_(new.weight, std=0.01)
    nn.init.constant_(new.bias, -math.log((1 - PRIOR) / PRIOR))
    head.cls_logits, head.num_classes = new, num_classes


def _detector_head(network: nn.Module, first_stride: int):
    """The factory of `network`'s pyramid and head on feature maps, for `num_classes`."""
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.retinanet import RetinaNet

    from .detection import DETECTIONS_PER_IMAGE, SCORE_THRESHOLD, map_detector, pyramid

    def make(num_classes: int) -> nn.Module:
        fpn, head = copy.deepcopy(network.backbone.fpn), copy.deepcopy(network.head)
        anchors = copy.deepcopy(network.anchor_generator)
        fresh_classifier(head.classification_head, num_classes)
        levels = pyramid(fpn, network.backbone.out_channels, list(range(len(network.backbone.body.return_layers))))
        common = {"anchor_generator": anchors, "head": head, "score_thresh": SCORE_THRESHOLD,
                  "nms_thresh": network.nms_thresh, "detections_per_img": DETECTIONS_PER_IMAGE,
                  "topk_candidates": network.topk_candidates}
        if isinstance(network, FCOS):
            detector = FCOS(levels, num_classes, center_sampling_radius=network.center_sampling_radius, **common)
        else:
            detector = RetinaNet(levels, num_classes, **common)
        return map_detector(detector, first_stride)

    return make


def _segmentation_head(network: nn.Module, stride: int):
    def make(num_classes: int) -> nn.Module:
        classifier = copy.deepcopy(network.classifier)
        last = classifier[-1]
        classifier[-1] = nn.Conv2d(last.in_channels, num_classes, kernel_size=1)
        return SegmentationHead(classifier, stride)

    return make


def _levels(backbone: Backbone, size: int) -> list[FeatureLevel]:
    """Channels and strides of the backbone's maps, from one forward pass of a blank image."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        maps = backbone.forward_feature_maps(torch.zeros(1, 3, size, size))
    backbone.train(was_training)
    return [FeatureLevel(channels=int(m.shape[1]), stride=int(round(size / m.shape[-1]))) for m in maps]


def _groups(backbone: Backbone) -> list[list[str]]:
    """Layer groups from the stem to the last stage: the body's children with parameters,
    in order (ResNet: conv1 with bn1, layer1 ... layer4; MobileNet: its blocks)."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for name, child in backbone.body.named_children():
        names = [f"body.{name}.{p}" for p, _ in child.named_parameters()]
        pending += names
        if name not in ("conv1",) and pending:  # the stem's conv goes with its norm
            groups.append(pending)
            pending = []
    if pending:
        groups.append(pending)
    return groups


def source_model(network: nn.Module, model: str, input_size: int, pretrained: bool, meta: dict) -> SourceModel:
    from .torchvision_source import DETECTORS, IMAGENET

    if model in DETECTORS:
        body = network.backbone.body
        backbone = Backbone(body, list(body.return_layers.values()))
    else:
        network.aux_classifier = None  # torchvision's training aid, not part of the model's output
        backbone = Backbone(network.backbone, ["out"])
    levels = _levels(backbone, 64)
    if model in DETECTORS:
        heads = {"detection": _detector_head(network, levels[0].stride)}
    else:
        heads = {"segmentation": _segmentation_head(network, levels[-1].stride)}
    encoder = ImageEncoder({"input_size": (3, input_size, input_size), "crop_pct": 1.0, "crop_mode": "squash",
                            "interpolation": "bilinear", **IMAGENET})
    return SourceModel(backbone=backbone, feature_dim=levels[-1].channels, modality="image", encode=encoder,
                       encode_whole=encoder, layer_groups=_groups(backbone), weights_id=state_digest(network),
                       pretrained=pretrained, preprocessing_id=str(sorted(encoder.identity().items())),
                       feature_levels=levels, task_heads=heads, meta=meta)
