"""Task `multilabel`: any number of classes per example (a 0/1 row per example), one
sigmoid per class, binary cross-entropy, and macro average precision as the headline.

Average precision is scikit-learn's (`average_precision_score`), computed per class and
averaged over the classes that have a positive example in the split (a class without
one has no defined AP; how many classes counted is not a metric, but a split where no
class has a positive scores None). Predictions are the sigmoid probabilities.
"""

from __future__ import annotations

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo

from .classification import check_class_count


def indicator_rows(labels, num_classes: int, what: str):
    """Labels as an (n, num_classes) 0/1 float32 array, or ValueError naming what is wrong."""
    import numpy as np

    array = np.asarray(labels)
    if array.ndim != 2 or array.shape[1] != num_classes:
        raise ValueError(f"{what}: expected a 0/1 row of {num_classes} per example (shape (n, {num_classes})), "
                         f"got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected 0/1 values, got {array.dtype} values")
    bad = np.argwhere((array != 0) & (array != 1))
    if len(bad):
        row, column = bad[0]
        raise ValueError(f"{what}: example {row} has {array[row, column]!r} for class {column}; expected 0 or 1")
    return array.astype(np.float32)


class MultilabelObjective(Objective):
    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def head(self, source):
        import torch

        return torch.nn.Linear(source.feature_dim, self.num_classes)

    def targets(self, labels):
        import numpy as np
        import torch

        return torch.as_tensor(np.asarray(labels, dtype=np.float32).reshape(-1, self.num_classes))

    def loss(self, outputs, targets):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(outputs.float(), targets)

    def predictions(self, outputs):
        return outputs.float().sigmoid().cpu().numpy()


class Multilabel(Task):
    name = "multilabel"
    version = "1"
    description = "a set of classes per example; sigmoid per class, binary cross-entropy; headline mAP"
    metrics = (
        MetricSpec("mAP", higher_is_better=True, low=0.0, high=1.0,
                   description="macro average precision over the classes with a positive example "
                               "(scikit-learn average_precision_score)"),
        MetricSpec("micro_AP", higher_is_better=True, low=0.0, high=1.0,
                   description="average precision over all (example, class) pairs (scikit-learn, micro)"),
        MetricSpec("macro_F1", higher_is_better=True, low=0.0, high=1.0,
                   description="macro F1 at probability 0.5 (scikit-learn f1_score, zero_division=0)"),
    )
    headline = "mAP"
    linear_loss = "sigmoid"

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        check_class_count(target)
        indicator_rows(labels, target.num_classes, f"{split} labels")

    def objective(self, target: TargetInfo, train_labels) -> MultilabelObjective:
        return MultilabelObjective(target.num_classes)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        import numpy as np

        shape = np.shape(predictions)
        if shape != (n, target.num_classes):
            raise ValueError(f"expected class probabilities of shape {(n, target.num_classes)}, got {shape}")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        import numpy as np
        from sklearn.metrics import average_precision_score, f1_score

        truth = np.asarray(labels).astype(np.int64)
        scores = np.asarray(predictions, dtype=np.float64)
        present = truth.sum(0) > 0
        if not len(truth) or not present.any():
            return {"mAP": None, "micro_AP": None, "macro_F1": None}
        per_class = [average_precision_score(truth[:, k], scores[:, k]) for k in np.flatnonzero(present)]
        return {"mAP": float(np.mean(per_class)),
                "micro_AP": float(average_precision_score(truth, scores, average="micro")),
                "macro_F1": float(f1_score(truth, (scores >= 0.5).astype(np.int64), average="macro",
                                           zero_division=0))}


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(Multilabel())
