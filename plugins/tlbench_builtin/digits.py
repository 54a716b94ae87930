"""Target `digits`: scikit-learn's bundled 8x8 handwritten digits, offline and small.

A class subset is relabelled 0..k-1 in the order given; each seed draws `shots`
training and `val_shots` validation images per class, and the rest is the test split.
"""

from __future__ import annotations

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.params import Param


class DigitsData(TargetData):
    modality = "image"

    def __init__(self, classes: list[int], shots: int, val_shots: int):
        import numpy as np
        from sklearn.datasets import load_digits

        digits = load_digits()
        keep = np.isin(digits.target, classes)
        # 0..16 intensities to 0..255 uint8 images
        self.images = np.round(digits.images[keep] * (255.0 / 16.0)).astype(np.uint8)
        relabel = {c: i for i, c in enumerate(classes)}
        self.labels = np.array([relabel[c] for c in digits.target[keep]], dtype=np.int64)
        self.num_classes = len(classes)
        self.class_names = [str(c) for c in classes]
        self.shots, self.val_shots = shots, val_shots
        self.revision = f"sklearn-digits-{len(digits.target)}"

    def splits(self, seed: int) -> Splits:
        import numpy as np

        rng = np.random.default_rng(seed)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            shots = self.shots
            if shots + self.val_shots >= len(members):
                raise ValueError(f"class {self.class_names[label]} has {len(members)} images, too few for "
                                 f"{shots} shots + {self.val_shots} validation images + a test split")
            parts["train"] += members[:shots].tolist()
            parts["val"] += members[shots:shots + self.val_shots].tolist()
            parts["test"] += members[shots + self.val_shots:].tolist()

        def make(indices: list[int]) -> Split:
            order = np.sort(np.asarray(indices, dtype=np.int64))
            return Split(examples=list(self.images[order]), labels=self.labels[order])

        return Splits(train=make(parts["train"]), val=make(parts["val"]), test=make(parts["test"]))


class Digits(Target):
    name = "digits"
    version = "1"
    description = "scikit-learn's bundled 8x8 digits: a class subset, k shots per class (offline)"
    params = {
        "classes": Param(list, list(range(10)), "digit classes to keep, relabelled 0..k-1 in this order",
                         items=int),
        "shots": Param(int, 10, "training images per class (seeded draw)", min=1),
        "val_shots": Param(int, 5, "validation images per class", min=0),
    }

    def check(self, params: dict, env: Env) -> None:
        from tlbench.errors import ParamError

        classes = params["classes"]
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ParamError(f"classes: expected distinct digits 0-9, got {classes!r}")

    def load(self, params: dict, env: Env) -> DigitsData:
        self.check(params, env)
        return DigitsData(params["classes"], params["shots"], params["val_shots"])


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Digits())
