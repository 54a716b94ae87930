"""Task `segmentation`: a class per pixel, scored by dataset-level mIoU.

Labels: one (height, width) integer mask per image, in the image's own pixels, with
class ids 0..K-1 and `IGNORE` (255) for pixels that count for nothing (VOC's borders,
Cityscapes' void). Images may differ in size.

Head: a light feature-pyramid decoder on the source's feature maps (`make_head`): each
level projected to a common width by a 1×1 convolution, upsampled to the finest level
and summed, a 3×3 convolution with group norm and ReLU, a 1×1 classifier, and the
logits upsampled by the finest level's stride to the input's size. A source with a
decoder of its own (`SourceModel.task_heads["segmentation"]`: torchvision's DeepLabV3
and FCN) gives it instead, with a fresh classifier: a module from the feature maps to
logits at the input's size. The task is dense
(`Task.dense`): the source encodes each image whole, resized to its input size and
never cropped, so the logits map back onto each image by resizing.

Loss: per-pixel cross-entropy at each label's own size (the logits resized bilinearly to
it), summed over the batch's labelled pixels and divided by their count, ignoring
`IGNORE` pixels. Predictions: the argmax at the input's size, as uint8
(int32 beyond 255 classes; not logits: a split's logits at full size would not fit in memory for real data sets);
scoring resizes each to its label's size by nearest neighbour.

Metrics, as VOC and Cityscapes compute them: one confusion matrix over every labelled
pixel of the split (not a mean of per-image or per-batch scores), mIoU = the mean over
classes of TP / (TP + FP + FN), over the classes that occur in the labels or the
predictions, and pixel accuracy. A test checks mIoU against torchmetrics'
`MulticlassJaccardIndex(average="macro", ignore_index=255)`.
"""

from __future__ import annotations

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo

IGNORE = 255
"""The label of pixels that are not scored."""
HEAD_WIDTH = 64


def _as_masks(labels, what: str) -> list:
    """Labels as a list of 2-d integer arrays, or ValueError naming what is wrong."""
    import numpy as np

    masks = list(labels) if not (hasattr(labels, "ndim") and labels.ndim == 2) else [labels]
    out = []
    for i, mask in enumerate(masks):
        array = np.asarray(mask)
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise ValueError(f"{what}: example {i}: expected a (height, width) mask of integer class ids, got "
                             f"shape {array.shape} of {array.dtype}")
        out.append(array)
    return out


def _resize_nearest(mask, shape: tuple[int, int]):
    """`mask` resized to `shape` by nearest neighbour (pixel centres), as an index lookup."""
    import numpy as np

    if mask.shape == tuple(shape):
        return mask
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def confusion(predictions, labels, num_classes: int):
    """The (num_classes, num_classes) confusion matrix (rows: label, columns: prediction)
    over every pixel whose label is a class (not `IGNORE`), predictions resized to their
    label's size."""
    import numpy as np

    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for predicted, truth in zip(predictions, labels):
        truth = np.asarray(truth)
        predicted = _resize_nearest(np.asarray(predicted), truth.shape)
        keep = truth != IGNORE
        index = truth[keep].astype(np.int64) * num_classes + predicted[keep].astype(np.int64)
        matrix += np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return matrix


def make_head(levels, num_classes: int):
    """The light feature-pyramid decoder (see the module docstring) over `levels`."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    order = sorted(range(len(levels)), key=lambda i: levels[i].stride)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.lateral = nn.ModuleList(nn.Conv2d(level.channels, HEAD_WIDTH, 1) for level in levels)
            self.fuse = nn.Sequential(nn.Conv2d(HEAD_WIDTH, HEAD_WIDTH, 3, padding=1, bias=False),
                                      nn.GroupNorm(8, HEAD_WIDTH), nn.ReLU(inplace=True))
            self.classify = nn.Conv2d(HEAD_WIDTH, num_classes, 1)
            self.stride = levels[order[0]].stride

        def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
            finest = maps[order[0]]
            size = finest.shape[-2:]
            fused = sum(F.interpolate(self.lateral[i](maps[i].float()), size=size, mode="bilinear",
                                      align_corners=False) if maps[i].shape[-2:] != size
                        else self.lateral[i](maps[i].float()) for i in range(len(maps)))
            logits = self.classify(self.fuse(fused))
            return F.interpolate(logits, scale_factor=self.stride, mode="bilinear", align_corners=False)

    return Head()


class SegmentationObjective(Objective):
    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def head(self, source):
        if "segmentation" in source.task_heads:  # the source's own decoder, a fresh classifier
            return source.task_heads["segmentation"](self.num_classes)
        if not source.feature_levels:
            raise ValueError("the segmentation head reads feature maps, which this source does not give")
        return make_head(source.feature_levels, self.num_classes)

    def targets(self, labels):
        """One int64 mask tensor per example (row-wise: masks may differ in size)."""
        import numpy as np
        import torch

        return [torch.from_numpy(mask.astype(np.int64)) for mask in _as_masks(labels, "labels")]

    def loss(self, outputs, targets):
        import torch
        from torch.nn import functional as F

        logits = outputs.float()
        by_shape: dict[tuple, list[int]] = {}
        for i, mask in enumerate(targets):
            by_shape.setdefault(tuple(mask.shape), []).append(i)
        total, pixels = logits.new_zeros(()), 0
        for shape, rows in by_shape.items():  # examples of one size: one resize, one loss
            resized = F.interpolate(logits[rows], size=shape, mode="bilinear", align_corners=False)
            truth = torch.stack([targets[i] for i in rows])
            total = total + F.cross_entropy(resized, truth, ignore_index=IGNORE, reduction="sum")
            pixels += int((truth != IGNORE).sum())
        return total / max(pixels, 1)

    def predictions(self, outputs):
        return outputs.argmax(dim=1).cpu().numpy().astype("uint8" if self.num_classes <= IGNORE else "int32")


class Segmentation(Task):
    name = "segmentation"
    version = "1"
    description = "a class per pixel; a light feature-pyramid decoder; headline dataset-level mIoU"
    metrics = (
        MetricSpec("mIoU", higher_is_better=True, low=0.0, high=1.0,
                   description="mean over classes of TP / (TP + FP + FN), from one confusion matrix over every "
                               "labelled pixel of the split (classes absent from labels and predictions left out)"),
        MetricSpec("pixel_accuracy", higher_is_better=True, low=0.0, high=1.0,
                   description="share of labelled pixels predicted right"),
    )
    headline = "mIoU"
    representation = "feature_maps"
    dense = True

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        for i, mask in enumerate(_as_masks(labels, f"{split} labels")):
            bad = mask[(mask != IGNORE) & ((mask < 0) | (mask >= target.num_classes))]
            if len(bad):
                raise ValueError(f"{split} labels: example {i} has class {int(bad[0])}; expected 0..."
                                 f"{target.num_classes - 1} or {IGNORE} (ignored)")
        if target.num_classes < 2:
            raise ValueError(f"expected at least 2 classes, got {target.num_classes}")

    def objective(self, target: TargetInfo, train_labels) -> SegmentationObjective:
        return SegmentationObjective(target.num_classes)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        masks = _as_masks(predictions, "predictions")
        if len(masks) != n:
            raise ValueError(f"expected {n} masks, got {len(masks)}")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        import numpy as np

        matrix = confusion(predictions, labels, target.num_classes)
        if not matrix.sum():
            return {"mIoU": None, "pixel_accuracy": None}
        tp = np.diag(matrix).astype(np.float64)
        union = matrix.sum(0) + matrix.sum(1) - tp
        present = union > 0
        return {"mIoU": float(np.mean(tp[present] / union[present])),
                "pixel_accuracy": float(tp.sum() / matrix.sum())}


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(Segmentation())
