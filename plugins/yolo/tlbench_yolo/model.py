"""An ultralytics YOLO `DetectionModel` as a tlbench `SourceModel`: the layers up to the
Detect head as the backbone (its maps are what Detect reads, P3/P4/P5), and the Detect
head as the `detection` task's head (`SourceModel.task_heads`), a fresh copy per call
with a new class branch, whose outputs give ultralytics' loss and ultralytics' decoding
and NMS in the form tlbench's detection objective reads (see `YoloOutputs`).

Written against ultralytics 8.4, where Detect returns in training mode a dict of raw
outputs (``{"boxes", "scores", "feats"}``, or ``{"one2many", "one2one"}`` of them for
end-to-end heads), and in eval mode ``(decoded, raw)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tlbench.api import FeatureLevel, SourceModel

# The COCO evaluation setting tlbench's detection task uses for every detector: scores
# above 0.05, at most 100 boxes per image, NMS at IoU 0.6 (ultralytics validates at conf
# 0.001, IoU 0.7 and 300 boxes), from the task itself so the two cannot drift apart.
from tlbench_builtin.detection import DETECTIONS_PER_IMAGE, NMS_IOU, SCORE_THRESHOLD  # noqa: E402


def _quiet() -> None:
    """ultralytics prints each built model's layer table unless told not to."""
    from ultralytics.utils import LOGGER

    LOGGER.setLevel(max(LOGGER.level, 30))


def detection_model(config):
    """ultralytics' DetectionModel from a config (a name such as ``yolov8n.yaml``, or a
    checkpoint's config dict), its weights as ultralytics initialises them (torch's
    generator, so a seeded build is reproducible)."""
    from ultralytics.nn.tasks import DetectionModel

    _quiet()
    network = DetectionModel(copy.deepcopy(config), verbose=False)
    return network.float()


def load_weights(path, config_name: str) -> tuple:
    """(config, state dict) of a weights file: an ultralytics checkpoint (the model pickled
    with its config, as ``yolov8n.pt``; read by ultralytics' own loader), else a state
    dict of a DetectionModel built from `config_name` (safetensors or a torch pickle read
    with weights_only=True)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return config_name, load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # an ultralytics checkpoint holds pickled modules: its own loader reads it
        state = None
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return config_name, state
    if not path.suffix.lower() == ".pt":
        raise ValueError("neither a state dict nor an ultralytics checkpoint (.pt)")
    from ultralytics.nn.tasks import torch_safe_load

    _quiet()
    checkpoint, _ = torch_safe_load(str(path.resolve()))  # an existing path: ultralytics downloads nothing
    network = checkpoint.get("ema") or checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(network, nn.Module) or not isinstance(getattr(network, "yaml", None), dict):
        raise ValueError("an ultralytics checkpoint holds its model under 'model' (or 'ema'), with its config")
    return network.yaml, {k: v.float() if v.is_floating_point() else v for k, v in network.state_dict().items()}


class YoloBackbone(nn.Module):
    """A YOLO's layers before its Detect head (backbone and neck), run as ultralytics runs
    them (`BaseModel._predict_once`: each layer reads the outputs its ``f`` names); the
    maps are the ones Detect reads, and the pooled vector is the last map's mean."""

    def __init__(self, layers: nn.Sequential, save: list[int], taps: list[int]):
        super().__init__()
        self.model = layers  # named as in ultralytics' DetectionModel: model.0.conv.weight ...
        self.taps = [int(i) for i in taps]
        self.keep = set(int(i) for i in save) | set(self.taps)

    def forward_feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], images
        for layer in self.model:
            if layer.f != -1:  # inputs from earlier layers
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.keep else None)
        return [outputs[i] for i in self.taps]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_maps(images)[-1].mean(dim=(2, 3))


class _LossModel:
    """What ultralytics' criteria read of a DetectionModel: the Detect head as its last
    layer (``model[-1]``), the hyperparameters (``args``: box, cls and dfl gains) and a
    parameter for the device."""

    def __init__(self, detect: nn.Module, args):
        self.model, self.args = [detect], args

    def parameters(self):
        return self.model[-1].parameters()


class YoloDetectHead(nn.Module):
    """A YOLO Detect head on the backbone's maps; its forward returns `YoloOutputs`."""

    def __init__(self, detect: nn.Module):
        super().__init__()
        self.detect = detect
        self._criteria: dict = {}

    def forward(self, maps: list[torch.Tensor]) -> "YoloOutputs":
        maps = [m.float() for m in maps]
        stride = int(self.detect.stride[0])
        input_size = (int(maps[0].shape[-2]) * stride, int(maps[0].shape[-1]) * stride)
        return YoloOutputs(self, self.detect(maps), input_size, int(maps[0].shape[0]))

    def criterion(self, device: torch.device):
        """ultralytics' own loss for this head, as `DetectionModel.init_criterion` picks it
        (`v8DetectionLoss`; `E2ELoss` for an end-to-end head), with ultralytics' default
        hyperparameters (box 7.5, cls 0.5, dfl 1.5), made once per device."""
        key = str(device)
        if key not in self._criteria:
            from ultralytics.nn.tasks import DetectionModel
            from ultralytics.utils import DEFAULT_CFG

            self._criteria[key] = DetectionModel.init_criterion(_LossModel(self.detect, DEFAULT_CFG))
        return self._criteria[key]

    def __getstate__(self):  # a criterion is rebuilt where it is used
        state = dict(self.__dict__)
        state["_criteria"] = {}
        return state


class YoloOutputs:
    """A batch's Detect outputs in the protocol of tlbench's detection objective: boxes in
    the input's pixels go in (`losses`) and come out (`detections`)."""

    def __init__(self, head: YoloDetectHead, out, input_size: tuple[int, int], batch: int):
        self.head, self.input_size, self.batch = head, input_size, batch
        self.raw = out[1] if isinstance(out, tuple) else out  # eval mode: (decoded, raw)
        self.decoded = out[0] if isinstance(out, tuple) else None

    def __len__(self) -> int:
        return self.batch

    def losses(self, targets) -> dict:
        """ultralytics' loss of the batch against `targets` (per image: boxes xyxy in input
        pixels, labels), as a mean over the batch's images: ultralytics' criteria return
        the batch's sum (its trainer's learning rates are set for that); tlbench's
        strategies, like torchvision's detectors, take a mean."""
        any_map = self.raw["one2many"]["feats"][0] if "one2many" in self.raw else self.raw["feats"][0]
        device = any_map.device
        height, width = self.input_size
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
        boxes = [t["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4) / scale for t in targets]
        xywh = [torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1) for b in boxes]
        batch = {"batch_idx": torch.cat([torch.full((len(b),), float(i), device=device) for i, b in enumerate(boxes)]),
                 "cls": torch.cat([t["labels"].to(device).reshape(-1, 1).float() for t in targets]),
                 "bboxes": torch.cat(xywh)}
        criterion = self.head.criterion(device)
        loss, _ = criterion(self.raw, batch)
        loss = loss / max(self.batch, 1)
        names = getattr(getattr(criterion, "one2many", criterion), "loss_names", ())
        if loss.dim() == 1 and len(names) == loss.numel():
            return dict(zip(names, loss.unbind()))
        return {"loss": loss.sum()}

    def detections(self) -> list[dict]:
        """ultralytics' decoding (Detect's own: DFL, anchors, strides; top-k for end-to-end
        heads) and NMS, at tlbench's COCO evaluation setting, boxes clipped to the input."""
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import clip_boxes

        detect = self.head.detect
        if self.decoded is not None:  # eval mode: Detect decoded them itself
            decoded = self.decoded
        else:  # training mode: decode as Detect.forward does in eval mode
            with torch.no_grad():
                raw = self.raw
                branch = (raw["one2one" if detect.end2end else "one2many"] if "one2one" in raw else raw)
                decoded = detect._inference(branch)
                if detect.end2end:
                    decoded = detect.postprocess(decoded.permute(0, 2, 1))
        kept = non_max_suppression(decoded.detach().float(), conf_thres=SCORE_THRESHOLD, iou_thres=NMS_IOU,
                                   multi_label=True, max_det=DETECTIONS_PER_IMAGE, nc=detect.nc,
                                   end2end=bool(detect.end2end))
        out = []
        for rows in kept:
            boxes = clip_boxes(rows[:, :4].clone(), self.input_size)
            out.append({"boxes": boxes, "scores": rows[:, 4], "labels": rows[:, 5].long()})
        return out


def fresh_class_branch(detect: nn.Module, num_classes: int) -> None:
    """Replace the last convolution of each level's class branch (``cv3``, and
    ``one2one_cv3`` of an end-to-end head) for `num_classes`, initialised as ultralytics
    initialises a new Detect: torch's default for the weights, `Detect.bias_init` for the
    biases (the box branch's biases, which bias_init also sets, are kept)."""
    branches = [detect.cv3] + ([detect.one2one_cv3] if getattr(detect, "one2one_cv3", None) is not None else [])
    for branch in branches:
        for level in branch:
            old = level[-1]
            level[-1] = nn.Conv2d(old.in_channels, num_classes, kernel_size=1).to(old.weight.device)
    detect.nc, detect.no = num_classes, num_classes + detect.reg_max * 4
    box_branches = [detect.cv2] + ([detect.one2one_cv2] if getattr(detect, "one2one_cv2", None) is not None else [])
    kept = [[level[-1].bias.detach().clone() for level in branch] for branch in box_branches]
    detect.bias_init()
    with torch.no_grad():
        for branch, biases in zip(box_branches, kept):
            for level, bias in zip(branch, biases):
                level[-1].bias.copy_(bias)


def _detection_head(network: nn.Module):
    """The factory of `network`'s Detect head, fresh per call, for `num_classes`."""

    def make(num_classes: int) -> YoloDetectHead:
        detect = copy.deepcopy(network.model[-1])
        fresh_class_branch(detect, num_classes)
        detect.shape, detect.max_det = None, DETECTIONS_PER_IMAGE  # anchors remade on first use
        detect.train()
        return YoloDetectHead(detect)

    return make


def _levels(backbone: YoloBackbone, strides: list[int]) -> list[FeatureLevel]:
    """Channels of the maps, from one forward pass of a blank image, and Detect's strides."""
    was_training = backbone.training
    backbone.eval()
    size = 2 * max(strides)
    with torch.no_grad():
        maps = backbone.forward_feature_maps(torch.zeros(1, 3, size, size))
    backbone.train(was_training)
    return [FeatureLevel(channels=int(m.shape[1]), stride=int(s)) for m, s in zip(maps, strides)]


def _groups(backbone: YoloBackbone) -> list[list[str]]:
    """One group per layer with parameters, from the stem to the neck's last layer."""
    groups = []
    for index, layer in enumerate(backbone.model):
        names = [f"model.{index}.{name}" for name, _ in layer.named_parameters()]
        if names:
            groups.append(names)
    return groups


def source_model(network: nn.Module, input_size: int, pretrained: bool, meta: dict) -> SourceModel:
    import ultralytics
    from tlbench_builtin.timm_models import ImageEncoder, state_digest

    detect = network.model[-1]
    backbone = YoloBackbone(network.model[:-1], network.save, list(detect.f))
    levels = _levels(backbone, [int(s) for s in detect.stride.tolist()])
    encoder = ImageEncoder({"input_size": (3, input_size, input_size), "crop_pct": 1.0, "crop_mode": "squash",
                            "interpolation": "bilinear", "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})
    meta = {**meta, "ultralytics": ultralytics.__version__, "one2one_head": getattr(detect, "one2one_cv2", None) is not None}
    return SourceModel(backbone=backbone, feature_dim=levels[-1].channels, modality="image", encode=encoder,
                       encode_whole=encoder, layer_groups=_groups(backbone), weights_id=state_digest(network),
                       pretrained=pretrained, preprocessing_id=str(sorted(encoder.identity().items())),
                       feature_levels=levels, task_heads={"detection": _detection_head(network)}, meta=meta)
