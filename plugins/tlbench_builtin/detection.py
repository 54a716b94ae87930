"""Task `detection`: boxes around objects and their classes, scored by COCO mAP.

Labels: one dict per image, in the image's own pixels:
``{"boxes": (m, 4) float xyxy, "classes": (m,) int class ids 0..K-1, "size": (height, width)}``
and, where the data have them, ``"image_id"``: the data's own id of the image (COCO's),
which saved predictions keep so they can be scored against the data's own annotation
file. An image may have no boxes (m = 0), and images may differ in size.

Head: torchvision's FCOS (Tian et al. 2019) on a feature pyramid over the source's
feature maps: torchvision's `FeaturePyramidNetwork` over the source levels of stride 8
and more (P3 onwards, as FCOS is defined; all levels when the source has fewer than two
of them), with P6 and P7 added by stride-2 convolutions, and `FCOSHead` (four 3x3
convolutions with group norm per branch; classification, box regression and
centre-ness). Why FCOS: it is anchor-free (no anchor sizes to tune to a data set's
objects, which differ wildly between 8-pixel digits and COCO), single-stage (no proposal
sampling, whose randomness makes short runs noisy), and its group norm trains with the
small batches a CPU affords; torchvision's own matching (centre sampling, scale ranges
per level), losses (sigmoid focal, GIoU, centre-ness) and decoding are used as they are,
by running torchvision's `FCOS` on the maps instead of on images. The FCOS scale ranges
come from each level's stride (its "anchor" size is the stride), as in the paper.

What a detection head returns, the contract between heads and this task's objective: an
outputs object with `input_size` (height, width), its batch size as `len`,
`losses(targets)` (a dict of loss tensors for boxes given in input pixels, with their
classes) and `detections()` (per image, boxes in input pixels, scores and classes);
`DetectorOutputs` is the one torchvision's detectors give.

A source that brings its own detector (`SourceModel.task_heads["detection"]`: torchvision's
COCO-trained FCOS and RetinaNet) gives a `map_detector` instead, its pretrained pyramid and
head kept and only the class-specific predictor new.

The task is dense (`Task.dense`): the source encodes each image whole, resized to its
input size and never cropped, so boxes map between the image and the input by scaling.
`Objective.targets` gives boxes as fractions of the image's width and height; the loss
scales them to the input. Predictions (at most 100 per image, score above 0.05, NMS at
IoU 0.6, the COCO evaluation setting) are boxes as fractions of the image, with their
scores and classes; scoring scales them back to each image's pixels.

Metrics: COCO's mAP@[.5:.95] (headline), mAP@.5 and mAP@.75, over every image of the
split at once, computed by faster-coco-eval (a maintained implementation of the COCO
evaluation; pycocotools' C++ port). Box area (w x h) stands for object area, and no box
is a crowd. A test checks the figures against torchmetrics' `MeanAveragePrecision`.
Saved predictions (`save_predictions`) are a COCO results list: ``image_id`` (the data's
own id, else the image's index in the split), ``category_id`` (the data's own id,
`TargetData.class_ids`, else the class index), ``bbox`` xywh in the image's pixels and
``score``.
"""

from __future__ import annotations

from functools import lru_cache

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo

FPN_WIDTH = 128
SCORE_THRESHOLD = 0.05
NMS_IOU = 0.6
DETECTIONS_PER_IMAGE = 100
MIN_STRIDE = 8
"""FCOS starts at P3 (stride 8): finer levels cost most and hold the smallest objects,
which P3 already reaches by its scale range (0 to 8 strides)."""


def check_label(label, where: str, num_classes: int | None = None) -> None:
    """ValueError naming what is wrong with one image's label."""
    import numpy as np

    if not isinstance(label, dict) or not {"boxes", "classes", "size"} <= set(label):
        raise ValueError(f"{where}: expected a dict with 'boxes', 'classes' and 'size', got "
                         f"{type(label).__name__}{sorted(label) if isinstance(label, dict) else ''}")
    boxes, classes = np.asarray(label["boxes"], dtype=np.float64), np.asarray(label["classes"])
    size = tuple(np.asarray(label["size"]).tolist())
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"{where}: size must be (height, width) in pixels, got {label['size']!r}")
    if boxes.ndim != 2 or boxes.shape[1] != 4 or classes.shape != (len(boxes),):
        raise ValueError(f"{where}: expected boxes (m, 4) and classes (m,), got {boxes.shape} and {classes.shape}")
    if len(boxes) and (not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any()):
        bad = int(np.flatnonzero(~np.isfinite(boxes).all(1) | (boxes[:, 2:] <= boxes[:, :2]).any(1))[0])
        raise ValueError(f"{where}: box {bad} {boxes[bad].tolist()} is not x0 < x1, y0 < y1 (xyxy in pixels)")
    if len(classes) and (classes.dtype.kind not in "iu" or
                         (num_classes is not None and not ((classes >= 0) & (classes < num_classes)).all())):
        bad = classes[(classes < 0) | (classes >= (num_classes or 0))] if classes.dtype.kind in "iu" else classes
        raise ValueError(f"{where}: class {bad[0].item()!r} is not an integer in 0...{(num_classes or 1) - 1}")


def _levels(levels) -> list[int]:
    """Indices of the source levels the pyramid reads (see `MIN_STRIDE`)."""
    coarse = [i for i, level in enumerate(levels) if level.stride >= MIN_STRIDE]
    chosen = coarse if len(coarse) >= 2 else list(range(len(levels)))
    return sorted(chosen, key=lambda i: levels[i].stride)


def make_head(levels, num_classes: int):
    """FCOS over a feature pyramid on the source's maps `levels` (see the module docstring)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOS, FCOSHead
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

    chosen = _levels(levels)
    strides = [levels[i].stride for i in chosen]
    strides += [strides[-1] * 2, strides[-1] * 4]  # P6, P7
    fpn = FeaturePyramidNetwork([levels[i].channels for i in chosen], FPN_WIDTH,
                                extra_blocks=LastLevelP6P7(FPN_WIDTH, FPN_WIDTH))
    anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
    detector = FCOS(pyramid(fpn, FPN_WIDTH, chosen), num_classes, anchor_generator=anchors,
                    head=FCOSHead(FPN_WIDTH, 1, num_classes), score_thresh=SCORE_THRESHOLD, nms_thresh=NMS_IOU,
                    detections_per_img=DETECTIONS_PER_IMAGE)
    return map_detector(detector, strides[0])


@lru_cache(maxsize=None)
def _modules():
    """The module classes (made on first use: torch is imported only when a head is built)."""
    from collections import OrderedDict

    from torch import nn

    class Pyramid(nn.Module):
        """A torchvision feature pyramid over some of a backbone's maps (a list), as the
        ordered dict of levels torchvision's detectors read."""

        def __init__(self, fpn, out_channels: int, chosen: list[int]):
            super().__init__()
            self.fpn, self.out_channels, self.chosen = fpn, out_channels, list(chosen)

        def forward(self, maps):
            return self.fpn(OrderedDict((str(k), maps[i].float()) for k, i in enumerate(self.chosen)))

    class MapDetector(nn.Module):
        """A torchvision one-stage detector (FCOS or RetinaNet) run on a backbone's feature
        maps, which tlbench's engine gives, instead of on images: its `backbone` is the
        pyramid over the maps; its matching, losses and decoding are torchvision's own."""

        def __init__(self, detector, first_stride: int):
            super().__init__()
            self.detector, self.first_stride = detector, int(first_stride)

        def forward(self, maps) -> DetectorOutputs:
            features = list(self.detector.backbone(maps).values())
            height, width = (int(v) * self.first_stride for v in features[0].shape[-2:])
            head_outputs = self.detector.head(features)
            anchors = self.detector.anchor_generator(_Images(features[0], (height, width)), features)
            cells = [f.shape[-2] * f.shape[-1] for f in features]
            per_cell = head_outputs["cls_logits"].shape[1] // sum(cells)  # anchors per location (RetinaNet: 9)
            return DetectorOutputs(head_outputs, anchors, [n * per_cell for n in cells], cells, (height, width),
                                   self.detector)

    return Pyramid, MapDetector


def pyramid(fpn, out_channels: int, chosen: list[int]):
    """torchvision's `fpn` over the maps `chosen` of a backbone's list of maps."""
    return _modules()[0](fpn, out_channels, chosen)


def map_detector(detector, first_stride: int):
    """torchvision's one-stage `detector` (FCOS, RetinaNet; its backbone a `pyramid`) as a
    head on feature maps; `first_stride`: input pixels per pixel of the pyramid's first level."""
    return _modules()[1](detector, first_stride)


class _Images:
    """What torchvision's AnchorGenerator reads of an `ImageList`: the batch's tensor (for
    its size, dtype and device) and each image's size (all the input's size here)."""

    def __init__(self, like, size: tuple[int, int]):
        self.tensors = like.new_empty((like.shape[0], 1, *size))
        self.image_sizes = [size] * like.shape[0]


class DetectorOutputs:
    """A batch's raw detector outputs, with what the loss and the decoding need: boxes in
    the input's pixels go in (`losses`) and come out (`detections`)."""

    def __init__(self, head_outputs, anchors, per_level, cells, input_size, detector):
        self.head_outputs, self.anchors, self.per_level = head_outputs, anchors, per_level
        self.cells, self.input_size, self.detector = cells, input_size, detector

    def __len__(self) -> int:
        return len(self.anchors)

    def losses(self, targets) -> dict:
        from torchvision.models.detection.fcos import FCOS

        head_outputs = {key: value.float() for key, value in self.head_outputs.items()}
        if isinstance(self.detector, FCOS):
            return self.detector.compute_loss(targets, head_outputs, self.anchors, self.cells)
        return self.detector.compute_loss(targets, head_outputs, self.anchors)

    def detections(self) -> list[dict]:
        split_outputs = {key: list(value.float().split(self.per_level, dim=1))
                         for key, value in self.head_outputs.items()}
        split_anchors = [list(a.split(self.per_level)) for a in self.anchors]
        return self.detector.postprocess_detections(split_outputs, split_anchors, [self.input_size] * len(self))


class DetectionObjective(Objective):
    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def head(self, source):
        if "detection" in source.task_heads:  # the source's own pyramid and box head, a fresh predictor
            return source.task_heads["detection"](self.num_classes)
        if not source.feature_levels:
            raise ValueError("the detection head reads feature maps, which this source does not give")
        return make_head(source.feature_levels, self.num_classes)

    def targets(self, labels):
        """Per image: boxes as fractions of the image's width and height, and classes."""
        import numpy as np
        import torch

        out = []
        for label in labels:
            height, width = (int(v) for v in np.asarray(label["size"]).tolist())
            boxes = np.asarray(label["boxes"], dtype=np.float32).reshape(-1, 4)
            scale = np.array([width, height, width, height], dtype=np.float32)
            out.append({"boxes": torch.from_numpy(boxes / scale),
                        "labels": torch.from_numpy(np.asarray(label["classes"], dtype=np.int64).reshape(-1))})
        return out

    def loss(self, outputs: DetectorOutputs, targets):
        import torch

        height, width = outputs.input_size
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        scaled = [{"boxes": t["boxes"] * scale.to(t["boxes"].device), "labels": t["labels"]} for t in targets]
        return sum(outputs.losses(scaled).values())

    def predictions(self, outputs: DetectorOutputs):
        import numpy as np

        height, width = outputs.input_size
        scale = np.array([width, height, width, height], dtype=np.float32)
        return [{"boxes": d["boxes"].cpu().numpy().astype(np.float32) / scale,
                 "scores": d["scores"].cpu().numpy().astype(np.float32),
                 "classes": d["labels"].cpu().numpy().astype(np.int64)} for d in outputs.detections()]


def coco_ground_truth(labels, num_classes: int) -> dict:
    """The COCO annotation dict of a split's labels: image i has id i + 1, class k the
    category id k + 1."""
    import numpy as np

    images, annotations = [], []
    for i, label in enumerate(labels):
        height, width = (int(v) for v in np.asarray(label["size"]).tolist())
        images.append({"id": i + 1, "height": height, "width": width})
        for box, cls in zip(np.asarray(label["boxes"], dtype=np.float64).reshape(-1, 4),
                            np.asarray(label["classes"]).reshape(-1)):
            x0, y0, x1, y1 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(cls) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)]}


def coco_results(predictions, labels, image_ids=None, category_ids=None) -> list[dict]:
    """Predictions as a COCO results list, boxes in each image's pixels (xywh). Image i is
    `image_ids[i]` (by default i + 1) and class k `category_ids[k]` (by default k + 1).
    Each image's boxes go through numpy at once and become Python numbers in one call:
    a split holds up to 100 boxes an image, and per-box numpy work would cost more than
    scoring them."""
    import numpy as np

    out = []
    for i, (predicted, label) in enumerate(zip(predictions, labels)):
        height, width = (int(v) for v in np.asarray(label["size"]).tolist())
        boxes = np.asarray(predicted["boxes"], dtype=np.float64).reshape(-1, 4) * [width, height, width, height]
        boxes[:, 2:] -= boxes[:, :2]
        classes = np.asarray(predicted["classes"]).reshape(-1).tolist()
        categories = [int(category_ids[c]) for c in classes] if category_ids is not None else [c + 1 for c in classes]
        image_id = int(image_ids[i]) if image_ids is not None else i + 1
        out += [{"image_id": image_id, "category_id": category, "bbox": box, "score": score}
                for box, score, category in zip(boxes.tolist(), np.asarray(predicted["scores"], dtype=np.float64)
                                                 .reshape(-1).tolist(), categories)]
    return out


def coco_map(ground_truth: dict, results) -> dict:
    """mAP@[.5:.95], mAP@.5 and mAP@.75 of `results` (a COCO results list) against
    `ground_truth` (a COCO dict), by faster-coco-eval; None for each when no image has a
    box.

    Evaluated over the one area range the metrics read (all) at 100 detections per
    image, then averaged from the accumulated precision exactly as COCO's `summarize`
    averages it (the cells that are not -1); the other area ranges and detection limits
    would triple the cost for figures no metric reports."""
    import numpy as np

    if not ground_truth["annotations"]:
        return {"mAP": None, "mAP_50": None, "mAP_75": None}
    if not len(results):
        return {"mAP": 0.0, "mAP_50": 0.0, "mAP_75": 0.0}
    from faster_coco_eval import COCO, COCOeval_faster

    truth = COCO(ground_truth)
    evaluation = COCOeval_faster(truth, truth.loadRes(results), iouType="bbox")
    evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
    evaluation.params.maxDets = [DETECTIONS_PER_IMAGE]
    evaluation.evaluate()
    evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, :, 0, 0]  # (IoU thresholds, recall, classes)
    thresholds = np.asarray(evaluation.params.iouThrs)

    def mean(cells) -> float:
        kept = cells[cells > -1]
        return float(np.mean(kept)) if kept.size else 0.0

    return {"mAP": mean(precision), "mAP_50": mean(precision[np.isclose(thresholds, 0.5)]),
            "mAP_75": mean(precision[np.isclose(thresholds, 0.75)])}


class Detection(Task):
    name = "detection"
    version = "1"
    description = "boxes and their classes; FCOS on a feature pyramid; headline COCO mAP@[.5:.95]"
    metrics = (
        MetricSpec("mAP", higher_is_better=True, low=0.0, high=1.0,
                   description="COCO mean average precision over IoU thresholds .50:.05:.95, all areas, "
                               "100 detections per image (faster-coco-eval)"),
        MetricSpec("mAP_50", higher_is_better=True, low=0.0, high=1.0, description="COCO AP at IoU .50"),
        MetricSpec("mAP_75", higher_is_better=True, low=0.0, high=1.0, description="COCO AP at IoU .75"),
    )
    headline = "mAP"
    representation = "feature_maps"
    dense = True

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        for i, label in enumerate(labels):
            check_label(label, f"{split} labels: example {i}", target.num_classes)

    def objective(self, target: TargetInfo, train_labels) -> DetectionObjective:
        return DetectionObjective(target.num_classes)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        import numpy as np

        if len(predictions) != n:
            raise ValueError(f"expected {n} images' detections, got {len(predictions)}")
        for i, predicted in enumerate(predictions):
            if not isinstance(predicted, dict) or not {"boxes", "scores", "classes"} <= set(predicted):
                raise ValueError(f"image {i}: expected a dict with 'boxes', 'scores' and 'classes'")
            boxes = np.asarray(predicted["boxes"]).reshape(-1, 4) if np.size(predicted["boxes"]) else np.zeros((0, 4))
            if not (len(boxes) == np.size(predicted["scores"]) == np.size(predicted["classes"])):
                raise ValueError(f"image {i}: boxes, scores and classes differ in number")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        return coco_map(coco_ground_truth(labels, target.num_classes), coco_results(predictions, labels))

    def saved_predictions(self, predictions, labels, target: TargetInfo):
        image_ids = [label.get("image_id", i + 1) for i, label in enumerate(labels)]
        return coco_results(predictions, labels, image_ids, target.class_ids)


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(Detection())
