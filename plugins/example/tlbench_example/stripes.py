"""Target `stripes`: synthetic grey images of oriented stripes; the class is the angle.

Class k of K shows a sinusoidal grating at angle k·180°/K with a random phase and
frequency, plus Gaussian noise. The images are generated once from ``data_seed``;
each run seed then draws ``shots`` training and ``val_shots`` validation images per
class, and the rest of the class is the test split.
"""

from __future__ import annotations

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.params import Param


class StripesData(TargetData):
    modality = "image"

    def __init__(self, params: dict):
        import numpy as np

        rng = np.random.default_rng(params["data_seed"])
        size, classes, per_class = params["image_size"], params["classes"], params["per_class"]
        y, x = np.mgrid[0:size, 0:size] / size
        images, labels = [], []
        for label in range(classes):
            angle = np.pi * label / classes
            for _ in range(per_class):
                frequency = rng.uniform(2.0, 4.0)
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
                wave = wave + params["noise"] * rng.standard_normal((size, size))
                images.append(np.clip(127.5 + 60 * wave, 0, 255).astype(np.uint8))
                labels.append(label)
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.num_classes = classes
        self.class_names = [f"{180 * k / classes:g}deg" for k in range(classes)]
        self.shots, self.val_shots = params["shots"], params["val_shots"]

    def splits(self, seed: int) -> Splits:
        import numpy as np

        rng = np.random.default_rng(seed)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label)).tolist()
            parts["train"] += members[:self.shots]
            parts["val"] += members[self.shots:self.shots + self.val_shots]
            parts["test"] += members[self.shots + self.val_shots:]

        def split(indices: list[int]) -> Split:
            order = sorted(indices)
            return Split(examples=[self.images[i] for i in order], labels=self.labels[order])

        return Splits(train=split(parts["train"]), val=split(parts["val"]), test=split(parts["test"]))


class Stripes(Target):
    name = "stripes"
    version = "1"
    description = "synthetic oriented stripes; the class is the angle (generated, no download)"
    params = {
        "classes": Param(int, 4, "number of angles between 0 and 180 degrees", min=2, max=36),
        "per_class": Param(int, 40, "images generated per class", min=3),
        "shots": Param(int, 10, "training images per class (seeded draw)", min=1),
        "val_shots": Param(int, 5, "validation images per class", min=1),
        "image_size": Param(int, 16, "images are image_size x image_size grey", min=4),
        "noise": Param(float, 0.5, "standard deviation of the added noise (signal amplitude 1)", min=0),
        "data_seed": Param(int, 0, "seed the images are generated from"),
    }

    def check(self, params: dict, env: Env) -> None:
        from tlbench.errors import ParamError

        if params["shots"] + params["val_shots"] >= params["per_class"]:
            raise ParamError(f"shots + val_shots ({params['shots']} + {params['val_shots']}) must be less than "
                             f"per_class ({params['per_class']}) to leave a test split")

    def load(self, params: dict, env: Env) -> StripesData:
        self.check(params, env)
        return StripesData(params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Stripes())
