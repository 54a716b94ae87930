"""Source `torchvision`: torchvision's COCO-trained detectors and segmentation models.

Transfer from a detector keeps what it learnt about finding objects: the backbone
(a ResNet-50), the feature pyramid and the box head, and replaces only the
class-specific predictor (the last convolution of the classification branch) for the
target's classes, initialised as torchvision initialises it. The same holds for the
segmentation models: backbone and decoder kept, the final 1x1 classifier new. The
backbone is the source's backbone (what strategies freeze, fine-tune or adapt, by layer
groups conv1, layer1 ... layer4); the rest comes as the task's head
(`SourceModel.task_heads`), which the `detection` and `segmentation` tasks take over a
head of their own. Other tasks read the backbone's pooled last map, or its maps.

Models: one-stage detectors, ``fcos_resnet50_fpn``, ``retinanet_resnet50_fpn`` and
``retinanet_resnet50_fpn_v2`` (two-stage Faster R-CNN is not offered: its region
proposals and RoI sampling run inside its forward pass with the targets, which the
engine's outputs-then-loss contract does not have); segmentation models,
``deeplabv3_resnet50``, ``deeplabv3_resnet101``, ``deeplabv3_mobilenet_v3_large``,
``fcn_resnet50`` and ``fcn_resnet101``.

Weights: `file` (a state dict, .pth or .safetensors), else torchvision's own (`weights`,
default its DEFAULT for the model) from torch hub's cache (``$TORCH_HOME/hub/
checkpoints``), downloaded once in `prepare` when the network may be used, never in a
build; offline and not cached, the suite ends before any run with one line saying how
to provide them. Pretrained detectors freeze their batch-norm statistics and affine
parameters (torchvision's FrozenBatchNorm2d), as torchvision trains them; with
``pretrained = false`` (and for the from-scratch baseline) the network is torchvision's
random initialisation with ordinary batch norm.

Images are given whole, resized to `input_size` square (the aspect ratio not kept) and
normalised with ImageNet's mean and standard deviation, torchvision's preprocessing
for these models without their own resizing.
"""

from __future__ import annotations

import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceCapabilities, SourceModel
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.params import Param

DETECTORS = ("fcos_resnet50_fpn", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2")
SEGMENTERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
              "fcn_resnet101")
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _task(model: str) -> str:
    return "detection" if model in DETECTORS else "segmentation"


def _weights(model: str, name: str):
    """torchvision's weights enum member `name` (DEFAULT allowed) for `model`."""
    import torchvision

    enum = torchvision.models.get_model_weights(model)
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ParamError(f"weights: torchvision has no {name!r} for {model}; its weights: "
                         f"{', '.join(['DEFAULT', *enum.__members__])}") from None


def _cache_file(weights) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _shown(path: Path) -> str:
    return repr(os.path.abspath(path))


def _network(model: str, num_classes: int, frozen_norm: bool):
    """torchvision's `model` with random weights, the class count of the weights it will
    load, and (pretrained detectors) frozen batch norm."""
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if model in SEGMENTERS:
        kwargs["aux_loss"] = True  # torchvision's weights carry the auxiliary classifier; dropped after loading
    network = torchvision.models.get_model(model, **kwargs)
    if model in DETECTORS and frozen_norm:
        _freeze_norms(network.backbone.body, FrozenBatchNorm2d)
    return network


def _freeze_norms(module, frozen_class) -> None:
    """Every BatchNorm2d under `module` replaced by a FrozenBatchNorm2d of the same size
    (its statistics and affine parameters loaded from the weights later)."""
    from torch import nn

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, frozen_class(child.num_features, eps=child.eps))
        else:
            _freeze_norms(child, frozen_class)


class TorchvisionSource(Source):
    name = "torchvision"
    version = "1"
    description = "torchvision's COCO detectors (FCOS, RetinaNet) and segmentation models (DeepLabV3, FCN)"
    network = "torchvision"
    params = {
        "model": Param(str, help="a torchvision detector or segmentation model", choices=DETECTORS + SEGMENTERS),
        "weights": Param(str, "DEFAULT", "torchvision's weights for the model (e.g. COCO_V1; DEFAULT: its "
                                         "default)"),
        "pretrained": Param(bool, True, "load the weights (from `file` when given)"),
        "file": Param(str, None, "local state dict (.pth or .safetensors) of the whole torchvision model instead "
                                 "of torch hub's cache, relative to the suite's folder", path="local"),
        "input_size": Param(int, 512, "square input size: images are resized to it whole", min=32),
    }

    def architecture(self, params: dict) -> dict:
        return {"model": params["model"], "input_size": params["input_size"]}

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"), source_head=False)

    def check(self, params: dict, env: Env) -> None:
        from .hub_cache import offline_setting

        if params["file"] and not params["pretrained"]:
            raise ParamError("file: a weights file is given but pretrained = false would never load it; "
                             "remove one of the two")
        weights = _weights(params["model"], params["weights"])
        if not params["pretrained"]:
            return
        if params["file"]:
            if not Path(params["file"]).expanduser().is_file():
                raise ResourceUnavailable(f"file: weights file {_shown(Path(params['file']))} does not exist")
            return
        cached = _cache_file(weights)
        if not cached.is_file() and offline_setting():
            raise ResourceUnavailable(f"model {params['model']!r}: its weights {weights} ({weights.url}) are not in "
                                      f"torch hub's cache ({cached.parent}) and {offline_setting()} is set; "
                                      f"download them once with network or set file = <a local state dict>")

    def fingerprint(self, params: dict, env: Env) -> str | None:
        from tlbench.hashing import file_sha256

        if not params["pretrained"]:
            return None
        if params["file"]:
            return "sha256:" + file_sha256(Path(params["file"]).expanduser())
        weights = _weights(params["model"], params["weights"])
        return f"url:{weights.url}"

    def prepare(self, params: dict, env: Env) -> None:
        """The weights on disk (torchvision's downloaded once into torch hub's cache) and loadable."""
        if not params["pretrained"]:
            return
        if params["file"]:
            self._state(params)
            return
        weights = _weights(params["model"], params["weights"])
        if _cache_file(weights).is_file():
            return
        env.log(f"torchvision: downloading the weights {weights} of {params['model']!r}")
        try:
            weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:
            raise ResourceUnavailable(f"model {params['model']!r}: downloading {weights.url} failed "
                                      f"({type(exc).__name__}); set file = <a local state dict>") from None

    def _state(self, params: dict) -> dict:
        from .timm_models import load_weights_file

        path = Path(params["file"]).expanduser() if params["file"] else \
            _cache_file(_weights(params["model"], params["weights"]))
        if not path.is_file():
            raise ResourceUnavailable(f"model {params['model']!r}: weights not found at {_shown(path)}; download "
                                      f"them once with network or set file = <a local state dict>")
        try:
            return load_weights_file(path)
        except Exception as exc:
            raise ResourceUnavailable(f"file: {_shown(path)} cannot be loaded as weights (safetensors, or a torch "
                                      f"pickle with weights_only=True): {type(exc).__name__}: "
                                      f"{first_line(exc, 200)}") from None

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        model = params["model"]
        use_weights = pretrained and params["pretrained"]
        weights = _weights(model, params["weights"])
        classes = len(weights.meta["categories"])
        network = _network(model, classes, frozen_norm=use_weights)
        meta = {"model": model, "weights": "random"}
        if use_weights:
            state = self._state(params)
            try:
                network.load_state_dict(state)
            except RuntimeError as exc:
                raise ResourceUnavailable(f"file: the weights do not fit torchvision's {model} with {classes} "
                                          f"classes: {first_line(exc, 200)}") from None
            meta["weights"] = params["file"] and "file" or str(weights)
        from .torchvision_models import source_model

        return source_model(network, model, params["input_size"], use_weights, meta)


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(TorchvisionSource())
