"""Target `digit-scenes`: canvases with several of scikit-learn's digits pasted on them.

One offline, CPU-sized data set that serves the task types beyond single-label
classification: the same scenes give a multilabel task (which digit classes appear)
a regression task (how many digits, or the sum of their values), a detection task (a
box and a class per digit) and a segmentation task (the class of every pixel): every
scene keeps, for each digit pasted on it, its class, its box and the pixels it covers.

How a scene is made: a number of digits is drawn between `min_digits` and
`max_digits`; each gets a class drawn uniformly from `classes` (repeats allowed), an
8x8 image of that class, a side between `min_scale` and `max_scale` pixels (bilinear
resize, done with elementwise numpy arithmetic so every machine rounds alike) and the
least crowded of a few random positions, where the whole resized square fits the
canvas; overlapping digits combine by their maximum.

How the splits are drawn: the test split is the same `n_test` scenes for every seed,
and train / val are drawn by the run's seed, disjointly, from the other
`n_scenes - n_test` scenes (the pool). The 8x8 digit images are split once, per class,
into two disjoint halves: test scenes are made from one half and pool scenes from the
other, so no handwritten digit seen in training appears in a test scene. Test and pool
scenes come from two random streams seeded by `scene_seed`, so changing `n_scenes`
leaves the test scenes as they were, and the first k test scenes are the same for any
`n_test` >= k. The whole set is generated once per `load` and kept.

numpy is imported inside the functions: registration must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.params import Param

from .digits import load_digit_images

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

GENERATOR_VERSION = "1"
"""Bump when the same parameters would give other scenes (part of `revision`)."""

INK = 64
"""Intensity (of 255) from which a pasted digit's pixel counts as ink: its box is
tight around its ink, and the masks give it the ink pixels where it is the brightest."""

_CANDIDATES = 16
"""Random positions tried per digit; the one overlapping the digits already pasted
least is kept, so digits rarely hide each other while there is room."""

_STREAMS = {"pool": 1, "test": 2, "halves": 3, "splits": 4}
_DIGIT_SIDE = 8


@dataclass(frozen=True)
class Scene:
    """One generated scene and what is known about how it was made."""

    image: np.ndarray
    """(canvas, canvas) uint8 greyscale image."""
    labels: np.ndarray
    """(m,) int64: class index (into `class_names` of the multilabel task, i.e. into
    `classes`) of each pasted digit, in pasting order."""
    boxes: np.ndarray
    """(m, 4) int64 xyxy in pixel edges: digit i's ink lies in columns
    x0..x1-1 and rows y0..y1-1, so 0 <= x0 < x1 <= canvas. The whole digit's box, also
    where a later digit covers part of it."""
    instances: np.ndarray
    """(canvas, canvas) uint8: 0 for background, i + 1 where digit i's ink is the
    brightest (the visible part of each digit)."""

    def class_mask(self) -> np.ndarray:
        """(canvas, canvas) uint8 per-pixel class: 0 for background, 1 + class index where
        a digit's ink shows (what a segmentation task with K + 1 classes scores)."""
        import numpy as np

        lookup = np.concatenate([[0], self.labels + 1]).astype(np.uint8)
        return lookup[self.instances]


@lru_cache(maxsize=None)
def _bilinear_taps(size: int):
    """For each of `size` output pixels: the two source pixels and the weight of the
    second, sampling at pixel centres as PIL and OpenCV do. Kept per size: every scene
    asks again."""
    import numpy as np

    x = np.clip((np.arange(size) + 0.5) * (_DIGIT_SIDE / size) - 0.5, 0, _DIGIT_SIDE - 1)
    low = np.floor(x).astype(np.int64)
    return low, np.minimum(low + 1, _DIGIT_SIDE - 1), x - low


def resize_digit(image: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 float image resized to size x size, bilinearly. Elementwise operations only
    (no matrix product, whose rounding depends on the BLAS build), so the scenes are
    byte-identical on every machine."""
    low, high, weight = _bilinear_taps(size)
    rows = image[low] * (1 - weight)[:, None] + image[high] * weight[:, None]
    return rows[:, low] * (1 - weight) + rows[:, high] * weight


def _ink_box(ink: np.ndarray) -> np.ndarray:
    """xyxy box (pixel edges) of the True pixels of a square patch."""
    import numpy as np

    columns, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
    return np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=np.int64)


def _overlap(candidates: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """(T, m) intersection of each candidate box with each placed box, over the smaller
    of the two areas: 1 when one box lies inside the other."""
    import numpy as np

    low = np.maximum(candidates[:, None, :2], placed[None, :, :2])
    high = np.minimum(candidates[:, None, 2:], placed[None, :, 2:])
    intersection = np.maximum(high - low, 0).prod(axis=2)
    return intersection / np.minimum(_area(candidates)[:, None], _area(placed)[None, :])


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)


def _place(box: np.ndarray, size: int, placed: np.ndarray, canvas: int, rng) -> np.ndarray:
    """Top-left corner (x, y) for a size x size patch whose ink box is `box`: the least
    crowded of `_CANDIDATES` random corners (the first when nothing is placed yet)."""
    import numpy as np

    corners = rng.integers(0, canvas - size + 1, size=(_CANDIDATES, 2))
    if not len(placed):
        return corners[0]
    overlap = _overlap(box + np.concatenate([corners, corners], axis=1), placed).max(axis=1)
    return corners[np.argmin(overlap)]


def _paste(image: np.ndarray, instances: np.ndarray, patch: np.ndarray, corner, number: int) -> None:
    """Combine `patch` into `image` by maximum at `corner`, and give digit `number` the
    ink pixels where it is now the brightest."""
    import numpy as np

    x, y = corner
    region = image[y:y + len(patch), x:x + len(patch)]
    owner = instances[y:y + len(patch), x:x + len(patch)]
    owner[(patch >= INK) & (patch > region)] = number
    np.maximum(region, patch, out=region)


def make_scene(bank: list[np.ndarray], params: dict, rng) -> Scene:
    """One scene from `bank` (per class index, an (n, 8, 8) array of 0..255 float
    digit images), drawn with `rng` as the module docstring says."""
    import numpy as np

    canvas = params["canvas"]
    count = int(rng.integers(params["min_digits"], params["max_digits"] + 1))
    labels = rng.integers(len(bank), size=count).astype(np.int64)
    image = np.zeros((canvas, canvas))
    instances = np.zeros((canvas, canvas), dtype=np.uint8)
    boxes = np.zeros((count, 4), dtype=np.int64)
    for i, label in enumerate(labels):
        digit = bank[label][rng.integers(len(bank[label]))]
        size = int(rng.integers(params["min_scale"], params["max_scale"] + 1))
        patch = resize_digit(digit, size)
        box = _ink_box(patch >= INK)
        corner = _place(box, size, boxes[:i], canvas, rng)
        boxes[i] = box + np.concatenate([corner, corner])
        _paste(image, instances, patch, corner, i + 1)
    return Scene(image=np.round(image).astype(np.uint8), labels=labels, boxes=boxes, instances=instances)


def _digit_banks(images: np.ndarray, targets: np.ndarray, classes: list[int],
                 scene_seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 8x8 digit images (0..16) of each kept class split into two disjoint halves
    (pool, test), as 0..255 floats; a fixed draw per class, seeded by `scene_seed`."""
    import numpy as np

    images = images * (255.0 / 16.0)
    rng = np.random.default_rng([scene_seed, _STREAMS["halves"]])
    pool, test = [], []
    for digit in classes:
        members = rng.permutation(np.flatnonzero(targets == digit))
        pool.append(images[members[len(members) // 2:]])
        test.append(images[members[:len(members) // 2]])
    return pool, test


def _make_scenes(bank: list[np.ndarray], count: int, params: dict, stream: str) -> list[Scene]:
    """`count` scenes from one random stream: the first k are the same whatever `count`."""
    import numpy as np

    rng = np.random.default_rng([params["scene_seed"], _STREAMS[stream]])
    return [make_scene(bank, params, rng) for _ in range(count)]


class DigitScenesData(TargetData):
    """The generated scenes (made once, in the constructor) and their labels per task."""

    modality = "image"

    def __init__(self, params: dict):
        self.params = dict(params)
        self.task = params["task"]
        self.classes = list(params["classes"])
        if self.task in ("multilabel", "detection"):
            self.num_classes, self.class_names = len(self.classes), [str(c) for c in self.classes]
        elif self.task == "segmentation":  # class 0 is the background
            self.num_classes, self.class_names = len(self.classes) + 1, ["background", *map(str, self.classes)]
        else:
            self.num_classes, self.class_names = 1, [params["regression_target"]]
        images, targets = load_digit_images()
        pool_bank, test_bank = _digit_banks(images, targets, self.classes, params["scene_seed"])
        self.pool = _make_scenes(pool_bank, params["n_scenes"] - params["n_test"], params, "pool")
        self.test = _make_scenes(test_bank, params["n_test"], params, "test")
        self.revision = f"digit-scenes-{GENERATOR_VERSION}-sklearn-digits-{len(targets)}"

    def scenes(self, seed: int) -> dict[str, list[Scene]]:
        """The scenes of 'train', 'val' and 'test' for `seed`, in the order `splits` gives
        them: with their boxes (`Scene.boxes`) and masks (`Scene.instances`,
        `Scene.class_mask()`), what detection and segmentation tasks read."""
        import numpy as np

        order = np.random.default_rng([seed, _STREAMS["splits"]]).permutation(len(self.pool))
        n_train, n_val = self.params["n_train"], self.params["n_val"]
        train, val = np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val])
        return {"train": [self.pool[i] for i in train], "val": [self.pool[i] for i in val],
                "test": list(self.test)}

    def labels(self, scenes: list[Scene]) -> np.ndarray:
        """Labels of `scenes` for this task: (n, K) uint8 0/1 presence of each class
        (multilabel), (n, canvas, canvas) uint8 per-pixel classes, 0 the background
        (segmentation), per scene a dict of its digits' boxes (xyxy), classes and the
        canvas size (detection), or (n,) float32 digit count or sum of digit values
        (regression)."""
        import numpy as np

        if self.task == "detection":
            canvas = self.params["canvas"]
            return [{"boxes": scene.boxes.astype(np.float32), "classes": scene.labels, "size": (canvas, canvas)}
                    for scene in scenes]
        if self.task == "segmentation":
            return np.stack([scene.class_mask() for scene in scenes])
        if self.task == "multilabel":
            present = np.zeros((len(scenes), self.num_classes), dtype=np.uint8)
            for row, scene in zip(present, scenes):
                row[scene.labels] = 1
            return present
        if self.params["regression_target"] == "count":
            return np.array([len(scene.labels) for scene in scenes], dtype=np.float32)
        values = np.asarray(self.classes, dtype=np.int64)
        return np.array([values[scene.labels].sum() for scene in scenes], dtype=np.float32)

    def splits(self, seed: int) -> Splits:
        def make(scenes: list[Scene]) -> Split:
            return Split(examples=[scene.image for scene in scenes], labels=self.labels(scenes))

        parts = self.scenes(seed)
        return Splits(train=make(parts["train"]), val=make(parts["val"]), test=make(parts["test"]))


class DigitScenes(Target):
    name = "digit-scenes"
    version = "1"
    description = ("canvases of several scikit-learn digits: which classes appear (multilabel), count or sum "
                   "(regression), a box per digit (detection), the class of every pixel (segmentation)")
    params = {
        "task": Param(str, "multilabel", "'multilabel': which classes appear; 'regression': see "
                                         "regression_target; 'detection': a box and class (classes[i]) per "
                                         "digit; 'segmentation': the class of every pixel (0: background, "
                                         "1 + i: classes[i])",
                      choices=("multilabel", "regression", "detection", "segmentation")),
        "regression_target": Param(str, "count", "with task 'regression': 'count' (digits in the scene) or "
                                                 "'sum' (of their values); ignored otherwise",
                                   choices=("count", "sum")),
        "classes": Param(list, list(range(10)), "digit classes pasted into scenes; multilabel class i is "
                                                "classes[i]", items=int),
        "canvas": Param(int, 32, "side of the square greyscale scene in pixels", min=16, max=256),
        "min_digits": Param(int, 1, "fewest digits in a scene", min=1),
        "max_digits": Param(int, 4, "most digits in a scene (uniform count in between)", min=1, max=32),
        "min_scale": Param(int, 8, "smallest side of a pasted digit in pixels (the 8x8 digit resized)",
                           min=4),
        "max_scale": Param(int, 14, "largest side of a pasted digit in pixels; at most canvas", min=4),
        "n_scenes": Param(int, 1200, "scenes generated: n_test fixed test scenes, the rest a pool for "
                                     "train and val", min=3),
        "n_test": Param(int, 400, "test scenes, the same for every seed", min=1),
        "n_train": Param(int, 100, "training scenes drawn from the pool by the run's seed", min=1),
        "n_val": Param(int, 50, "validation scenes drawn from the pool by the run's seed", min=1),
        "scene_seed": Param(int, 0, "seed of the scene generator: the scenes do not depend on the run's seed",
                            min=0),
    }

    def task(self, params: dict) -> str:
        return params["task"]

    def modality(self, params: dict) -> str:
        return "image"

    def check(self, params: dict, env: Env) -> None:
        from tlbench.errors import ParamError

        classes = params["classes"]
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ParamError(f"classes: expected distinct digits 0-9, got {classes!r}")
        if params["task"] == "multilabel" and len(classes) < 2:
            raise ParamError(f"classes: the multilabel task needs at least 2 classes (with one, every scene "
                             f"holds it), got {classes!r}")
        if params["min_digits"] > params["max_digits"]:
            raise ParamError(f"min_digits: {params['min_digits']} is more than max_digits "
                             f"{params['max_digits']}")
        if params["min_scale"] > params["max_scale"]:
            raise ParamError(f"min_scale: {params['min_scale']} is more than max_scale {params['max_scale']}")
        if params["max_scale"] > params["canvas"]:
            raise ParamError(f"max_scale: a digit of {params['max_scale']} pixels does not fit a "
                             f"{params['canvas']}-pixel canvas")
        wanted = params["n_train"] + params["n_val"] + params["n_test"]
        if wanted > params["n_scenes"]:
            raise ParamError(f"n_scenes: {params['n_scenes']} scenes cannot hold n_train + n_val + n_test "
                             f"= {wanted}")

    def load(self, params: dict, env: Env) -> DigitScenesData:
        self.check(params, env)
        return DigitScenesData(params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(DigitScenes())
