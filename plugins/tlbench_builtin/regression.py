"""Task `regression`: one or more real values per example, a linear head, squared error
on standardised targets, and R² as the headline.

The loss sees targets standardised with the mean and standard deviation of the
training split alone (a column that is constant there is only centred), so learning
rates mean the same whatever the targets' scale; predictions are mapped back to the
targets' own units before they are scored. R², MAE and RMSE are scikit-learn's (R²
averaged uniformly over the values). R² may be negative: worse than predicting the
split's mean.
"""

from __future__ import annotations

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo


def value_rows(labels, outputs: int, what: str):
    """Labels as an (n, outputs) float64 array, or ValueError naming what is wrong."""
    import numpy as np

    array = np.asarray(labels)
    if array.dtype.kind not in "iuf" or array.dtype.kind == "b":
        raise ValueError(f"{what}: expected numbers, got {array.dtype} values")
    if array.ndim == 1 and outputs == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != outputs:
        raise ValueError(f"{what}: expected {outputs} value(s) per example, got shape {array.shape}")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise ValueError(f"{what}: example {bad[0][0]} has the value {array[tuple(bad[0])]!r}; expected a finite number")
    return array.astype(np.float64)


class RegressionObjective(Objective):
    def __init__(self, mean, std, flat: bool):
        self.mean, self.std, self.flat = mean, std, flat
        """Per value, from the training split; `flat`: labels are one value per example."""

    def head(self, source):
        import torch

        return torch.nn.Linear(source.feature_dim, len(self.mean))

    def targets(self, labels):
        import torch

        values = value_rows(labels, len(self.mean), "labels")
        return torch.as_tensor(((values - self.mean) / self.std).astype("float32"))

    def loss(self, outputs, targets):
        import torch.nn.functional as F

        return F.mse_loss(outputs.float(), targets)

    def predictions(self, outputs):
        values = outputs.float().cpu().numpy().astype("float64") * self.std + self.mean
        return values[:, 0] if self.flat else values

    def info(self) -> dict:
        return {"standardised_with": {"mean": self.mean.tolist(), "std": self.std.tolist()}}


class Regression(Task):
    name = "regression"
    version = "1"
    description = "real values per example; linear head, squared error on standardised targets; headline R²"
    metrics = (
        MetricSpec("r2", higher_is_better=True, high=1.0,
                   description="coefficient of determination (scikit-learn r2_score); below 0 is worse "
                               "than predicting the mean"),
        MetricSpec("mae", higher_is_better=False, low=0.0, description="mean absolute error (scikit-learn)"),
        MetricSpec("rmse", higher_is_better=False, low=0.0, description="root mean squared error (scikit-learn)"),
    )
    headline = "r2"
    linear_loss = "squared"

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        value_rows(labels, target.num_classes, f"{split} labels")

    def objective(self, target: TargetInfo, train_labels) -> RegressionObjective:
        import numpy as np

        values = value_rows(train_labels, target.num_classes, "train labels")
        std = values.std(0)
        return RegressionObjective(values.mean(0), np.where(std > 0, std, 1.0), np.ndim(train_labels) == 1)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        import numpy as np

        shape = np.shape(predictions)
        expected = [(n, target.num_classes)] + ([(n,)] if target.num_classes == 1 else [])
        if shape not in expected:
            raise ValueError(f"expected predicted values of shape {expected[-1]}, got {shape}")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        import numpy as np
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        truth = value_rows(labels, target.num_classes, "labels")
        predicted = np.asarray(predictions, dtype=np.float64).reshape(truth.shape)
        if len(truth) < 2:  # R² of one example is undefined
            return {"r2": None, "mae": None, "rmse": None}
        return {"r2": float(r2_score(truth, predicted)), "mae": float(mean_absolute_error(truth, predicted)),
                "rmse": float(np.sqrt(mean_squared_error(truth, predicted)))}


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(Regression())
