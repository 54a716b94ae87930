"""Target `digits`: scikit-learn's bundled 8x8 handwritten digits, offline and small.

A class subset is relabelled 0..k-1 in the order given; each seed draws `shots`
training and `val_shots` validation images per class, and the rest is the test split.
`half` keeps one of two disjoint halves of the images (by their position in the file),
so a source pretrained on one half never saw a target's images from the other.

The images are read from the file scikit-learn ships (``datasets/data/digits.csv.gz``)
with numpy, as scikit-learn's own `load_digits` reads it, rather than through
`load_digits`: importing scikit-learn costs seconds in every process that plans or runs
a suite (the quickstart plans in its driver and runs in each worker), reading the file
milliseconds. Where the file is not found (another scikit-learn layout), `load_digits`
itself is used, and a test checks that both give the same arrays.
"""

from __future__ import annotations

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.params import Param


def load_digit_images():
    """scikit-learn's digits as (images of 0..16 intensities, 8x8 float64; labels).

    Read straight from the file scikit-learn ships, as its `load_digits` reads it:
    importing scikit-learn costs seconds in every process that plans or runs a suite,
    reading the file milliseconds. `load_digits` itself where the file is not found.
    """
    import gzip
    import importlib.util
    from pathlib import Path

    import numpy as np

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = spec.submodule_search_locations if spec is not None else None
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path, mode="rt", encoding="utf-8") as handle:
        data = np.loadtxt(handle, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


HALVES = ("even", "odd")
"""The two halves of the file's images: at even and at odd positions (each has about 90
images of every digit)."""


class DigitsData(TargetData):
    modality = "image"

    def __init__(self, classes: list[int], shots: int, val_shots: int, half: str = "all"):
        import numpy as np

        images, targets = load_digit_images()
        keep = np.isin(targets, classes)
        if half != "all":
            keep &= np.arange(len(targets)) % 2 == HALVES.index(half)
        # 0..16 intensities to 0..255 uint8 images
        self.images = np.round(images[keep] * (255.0 / 16.0)).astype(np.uint8)
        relabel = {c: i for i, c in enumerate(classes)}
        self.labels = np.array([relabel[c] for c in targets[keep]], dtype=np.int64)
        self.num_classes = len(classes)
        self.class_names = [str(c) for c in classes]
        self.shots, self.val_shots = shots, val_shots
        self.revision = f"sklearn-digits-{len(targets)}"

    def splits(self, seed: int) -> Splits:
        import numpy as np

        rng = np.random.default_rng(seed)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            shots = self.shots
            if shots + self.val_shots >= len(members):
                from tlbench.errors import ParamError

                raise ParamError(f"shots: class {self.class_names[label]} has {len(members)} images, too few for "
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
        "half": Param(str, "all", "the images kept: 'all', or one of two disjoint halves, 'even' or 'odd' "
                                  "(positions in the file), so that two targets share no image",
                      choices=("all", *HALVES), omit_default=True),
    }

    def modality(self, params: dict) -> str:
        return "image"

    def check(self, params: dict, env: Env) -> None:
        from tlbench.errors import ParamError

        classes = params["classes"]
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ParamError(f"classes: expected distinct digits 0-9, got {classes!r}")

    def load(self, params: dict, env: Env) -> DigitsData:
        self.check(params, env)
        return DigitsData(params["classes"], params["shots"], params["val_shots"], params["half"])


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Digits())
