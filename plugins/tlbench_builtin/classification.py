"""Task `classification`: one class per example, a linear head, cross-entropy, and
top-1 accuracy as the headline.

These are tlbench 0.1's numbers, unchanged: the same head (a linear layer over the
pooled features, initialised from the run's seeded generator), the same loss (with the
engine's `label_smoothing` knob) and the same accuracy (the argmax of the logits equals
the label; ties go to the lower class, as numpy's argmax does), so classification run
ids and results carry over. The accuracy is tested against scikit-learn's.
"""

from __future__ import annotations

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo


def class_ids(labels, what: str):
    """Labels as a 1-d int64 array, or ValueError naming what is wrong."""
    import numpy as np

    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected one class id per example (a 1-d array), got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{what}: expected integer class ids, got {array.dtype} values")
    return array.astype(np.int64, copy=False)


def check_class_count(target: TargetInfo) -> None:
    if target.num_classes < 2:  # every run would score 1.0 and call it transfer
        raise ValueError(f"a target needs at least 2 classes, it has {target.num_classes}")


class ClassificationObjective(Objective):
    def __init__(self, num_classes: int, label_smoothing: float = 0.0):
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def head(self, source):
        import torch

        return torch.nn.Linear(source.feature_dim, self.num_classes)

    def targets(self, labels):
        import numpy as np
        import torch

        return torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def loss(self, outputs, targets):
        import torch.nn.functional as F

        return F.cross_entropy(outputs.float(), targets, label_smoothing=self.label_smoothing)

    def predictions(self, outputs):
        return outputs.float().cpu().numpy()

    def configure(self, knobs: dict) -> "ClassificationObjective":
        return ClassificationObjective(self.num_classes, float(knobs.get("label_smoothing") or 0.0))


class Classification(Task):
    name = "classification"
    version = "1"
    description = "one class per example; linear head, cross-entropy; headline top-1 accuracy"
    metrics = (MetricSpec("accuracy", higher_is_better=True, low=0.0, high=1.0,
                          description="top-1 accuracy: the argmax of the logits equals the label"),)
    headline = "accuracy"
    linear_loss = "softmax"

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        import numpy as np

        check_class_count(target)
        ids = class_ids(labels, f"{split} labels")
        bad = np.flatnonzero((ids < 0) | (ids >= target.num_classes))
        if len(bad):
            raise ValueError(f"{split} labels: example {bad[0]} has class {ids[bad[0]]}, outside "
                             f"0..{target.num_classes - 1} (num_classes {target.num_classes})")

    def objective(self, target: TargetInfo, train_labels) -> ClassificationObjective:
        return ClassificationObjective(target.num_classes)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        import numpy as np

        shape = np.shape(predictions)
        if shape != (n, target.num_classes):
            raise ValueError(f"expected logits of shape {(n, target.num_classes)}, got {shape}")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        import numpy as np

        logits, labels = np.asarray(predictions), np.asarray(labels)
        return {"accuracy": float((logits.argmax(1) == labels).mean()) if len(labels) else None}


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(Classification())
