"""Strategy `nearest-mean`: classify by the nearest class mean of frozen features.

No gradient step: the class means of the training features are the whole model, and
an example's logits are its negative squared distances to them. With
``features = "cl2n"`` (the default) features are first centred on the training mean
and L2-normalised (SimpleShot's CL2N, Wang et al. 2019). It only reads frozen features, so
tlbench's feature cache serves it and the backbone is never touched.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param


def class_means(features, labels, num_classes: int):
    import numpy as np

    return np.stack([features[labels == k].mean(0) for k in range(num_classes)])


def nearest_mean_logits(features, means):
    """Negative squared distances to the class means: the argmax is the nearest mean."""
    import numpy as np

    return -((features[:, None, :] - means[None, :, :]) ** 2).sum(-1).astype(np.float32)


def cl2n(features, center):
    """Centre on the training mean, then L2-normalise each example."""
    import numpy as np

    centred = features - center
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


class NearestMean(Strategy):
    name = "nearest-mean"
    version = "1"
    description = "nearest class mean of frozen features (no gradient training; SimpleShot CL2N)"
    frozen_features_only = True
    params = {
        "features": Param(str, "cl2n", "cl2n: centred and L2-normalised features; raw: as extracted",
                          choices=("cl2n", "raw")),
    }

    def fit(self, params: dict, run) -> FitResult:
        features = {name: run.features(name) for name in ("train", "val", "test")}
        run.check_budget()
        train_labels = run.split("train").labels
        missing = [k for k in range(run.num_classes) if not (train_labels == k).any()]
        if missing:
            raise ValueError(f"nearest-mean needs training examples of every class; none for {missing}")
        if params["features"] == "cl2n":
            center = features["train"].mean(0)
            features = {name: cl2n(value, center) for name, value in features.items()}
        means = class_means(features["train"], train_labels, run.num_classes)
        logits = {name: nearest_mean_logits(value, means) for name, value in features.items()}
        backbone = sum(p.numel() for p in run.source.backbone.parameters())
        per_class = [int((train_labels == k).sum()) for k in range(run.num_classes)]
        return FitResult(logits=logits, trainable_params=int(means.size), total_params=int(backbone + means.size),
                         info={"features": params["features"], "train_per_class": per_class})


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(NearestMean())
