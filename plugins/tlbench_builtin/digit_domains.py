"""Target `digit-domains`: scikit-learn's digits drawn in one of several styles (domains).

An offline domain-shift benchmark for domain adaptation: the same ten classes in
styles of increasing distance from the clean digits. Each 8x8 digit is upscaled
bilinearly to `size` x `size` pixels and restyled (`domain`):

- `clean`: nothing, white strokes on black (the labelled domain);
- `thick`: strokes size/16 pixels (at least 1) wider and taller, a grey dilation by a
  square; a mild shift (ERM keeps most of its accuracy);
- `rotate-blur`: rotated by a uniform angle in ±45°, then a Gaussian blur of σ = size/20;
  a moderate shift;
- `inverted`: 255 − the clean image, black strokes on white; severe (the first filters
  see the negative);
- `drawn`: the strokes' outline (a morphological gradient) in blue ink on noisy cream
  paper, RGB; severe.

Disjoint images across domains. scikit-learn's 1797 digits are split once, per class,
into three fixed thirds (`pool`): "pretrain", "source" and "target" (a draw seeded by
`style_seed`, the same for every domain). A suite that pretrains a source on the spot
and adapts it gives the pretraining the "pretrain" third, the labelled domain the
"source" third and the unlabelled domain the "target" third, so no handwritten digit
appears in two of them, restyled or not: a target-domain test image is never a
restyled source-domain training image, and the source domain's test split (ERM's side
of the domain gap) holds digits the pretraining never saw. `pool = "all"` takes every
image, for a target used on its own.

Splits. From its pool, each seed draws `shots` training and `val_shots` validation
images per class; the rest is the test split (per class, about 59 images in a third,
178 in all). The styles do not depend on the run's seed: the per-image draws (rotation angles,
paper noise) are made once for all 1797 digits from streams seeded by `style_seed` and
picked by the image's index, so an image looks the same whatever the pool, classes or
split.

Reproducible bytes. Everything is elementwise numpy arithmetic (no matrix product,
whose rounding depends on the BLAS build); the few transcendental values (rotation
sines and cosines, blur weights) are rounded to 2^-20 before use, so that a libm
differing in the last bit does not reach the pixels. Generating a third takes from a
few tens of milliseconds (clean) to a quarter of a second (rotate-blur at 32 pixels).

numpy is imported inside the functions: registration must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.params import Param

from .digits import load_digit_images

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

GENERATOR_VERSION = "1"
"""Bump when the same parameters would give other images (part of `revision`)."""

DOMAINS = ("clean", "thick", "rotate-blur", "inverted", "drawn")
POOLS = ("all", "pretrain", "source", "target")
_THIRDS = ("pretrain", "source", "target")
_STREAMS = {"pools": 1, "angles": 2, "paper": 3, "splits": 4}
_SIDE = 8
_QUANTUM = 2.0 ** -20
MAX_ANGLE = 45.0
"""Largest rotation (degrees) of `rotate-blur`."""
PAPER = (246.0, 240.0, 222.0)
INK = (28.0, 52.0, 140.0)


def _quantise(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.round(values / _QUANTUM) * _QUANTUM


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """(n, 8, 8) floats to (n, size, size), bilinearly, sampling at pixel centres."""
    import numpy as np

    x = np.clip((np.arange(size) + 0.5) * (_SIDE / size) - 0.5, 0, _SIDE - 1)
    low = np.floor(x).astype(np.int64)
    high = np.minimum(low + 1, _SIDE - 1)
    weight = x - low
    rows = images[:, low] * (1 - weight)[None, :, None] + images[:, high] * weight[None, :, None]
    return rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight


def _shifted(images: np.ndarray, dy: int, dx: int, fill: float = 0.0) -> np.ndarray:
    """Images moved by (dy, dx) pixels, `fill` where nothing moved in."""
    import numpy as np

    out = np.full_like(images, fill)
    _, height, width = images.shape
    ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
    xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
    out[:, yd, xd] = images[:, ys, xs]
    return out


def _disc(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dy * dy + dx * dx <= radius * radius]


def thicken(images: np.ndarray, grow: int) -> np.ndarray:
    """Strokes `grow` pixels wider and taller: the maximum over a (grow + 1)-pixel square."""
    import numpy as np

    out = images.copy()
    for dy in range(grow + 1):
        for dx in range(grow + 1):
            np.maximum(out, _shifted(images, dy, dx), out=out)
    return out


def dilate(images: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation (maximum) over a disc of `radius` pixels."""
    import numpy as np

    out = images.copy()
    for dy, dx in _disc(radius):
        np.maximum(out, _shifted(images, dy, dx), out=out)
    return out


def erode(images: np.ndarray, radius: int) -> np.ndarray:
    """Grey erosion (minimum) over a disc of `radius` pixels (outside the image counts as 0)."""
    import numpy as np

    out = images.copy()
    for dy, dx in _disc(radius):
        np.minimum(out, _shifted(images, dy, dx), out=out)
    return out


def rotate(images: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Each image rotated by its angle about its centre (bilinear, black outside)."""
    import numpy as np

    n, size, _ = images.shape
    radians = np.deg2rad(degrees)
    cos, sin = _quantise(np.cos(radians))[:, None, None], _quantise(np.sin(radians))[:, None, None]
    centre = (size - 1) / 2.0
    y, x = np.meshgrid(np.arange(size) - centre, np.arange(size) - centre, indexing="ij")
    # where each output pixel comes from: the inverse rotation of its coordinates
    source_x = cos * x[None] + sin * y[None] + centre
    source_y = -sin * x[None] + cos * y[None] + centre
    x0, y0 = np.floor(source_x).astype(np.int64), np.floor(source_y).astype(np.int64)
    wx, wy = source_x - x0, source_y - y0
    padded = np.zeros((n, size + 2, size + 2))
    padded[:, 1:-1, 1:-1] = images
    index = np.arange(n)[:, None, None]

    def tap(yy, xx):
        return padded[index, np.clip(yy + 1, 0, size + 1), np.clip(xx + 1, 0, size + 1)]

    return ((tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx) * (1 - wy)
            + (tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx) * wy)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (kernel cut at 3σ, zero outside the image)."""
    import numpy as np

    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = _quantise(taps / taps.sum())
    rows = sum(weight * _shifted(images, d, 0) for d, weight in zip(range(-radius, radius + 1), taps))
    return sum(weight * _shifted(rows, 0, d) for d, weight in zip(range(-radius, radius + 1), taps))


def stylise(images: np.ndarray, indices: np.ndarray, domain: str, size: int, style_seed: int) -> np.ndarray:
    """(n, 8, 8) digits (0..16) whose indices among the 1797 are `indices`, in `domain`
    at `size` pixels: (n, size, size) uint8, or (n, size, size, 3) for `drawn`."""
    import numpy as np

    pixels = upscale(images * (255.0 / 16.0), size)
    if domain == "thick":
        pixels = thicken(pixels, max(1, size // 16))
    elif domain == "inverted":  # of the clean image's bytes, so the two are exact negatives
        return 255 - np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    elif domain == "rotate-blur":
        angles = np.random.default_rng([style_seed, _STREAMS["angles"]]).uniform(-MAX_ANGLE, MAX_ANGLE, 1797)
        pixels = blur(rotate(pixels, angles[indices]), size / 20.0)
    elif domain == "drawn":
        radius = max(1, round(size / 32))
        outline = np.clip(2.0 * (dilate(pixels, radius) - erode(pixels, radius)), 0, 255) / 255.0
        noise = np.random.default_rng([style_seed, _STREAMS["paper"]]).uniform(-18.0, 18.0, (1797, size, size))
        paper = noise[indices][..., None] + np.asarray(PAPER)
        pixels = paper * (1 - outline[..., None]) + np.asarray(INK) * outline[..., None]
    elif domain != "clean":
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def pool_indices(targets: np.ndarray, pool: str, style_seed: int) -> np.ndarray:
    """Indices (sorted) among the 1797 digits of one fixed third per class, or all."""
    import numpy as np

    if pool == "all":
        return np.arange(len(targets))
    rng = np.random.default_rng([style_seed, _STREAMS["pools"]])
    part = _THIRDS.index(pool)
    chosen = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(targets == digit))
        bounds = np.linspace(0, len(members), 4).round().astype(int)
        chosen.append(members[bounds[part]:bounds[part + 1]])
    return np.sort(np.concatenate(chosen))


class DigitDomainsData(TargetData):
    """One domain's images of one pool (made once, in the constructor)."""

    modality = "image"

    def __init__(self, params: dict):
        import numpy as np

        images, targets = load_digit_images()
        classes = list(params["classes"])
        indices = pool_indices(targets, params["pool"], params["style_seed"])
        indices = indices[np.isin(targets[indices], classes)]
        self.indices = indices
        """Each image's index among scikit-learn's 1797 digits (for disjointness checks)."""
        self.images = stylise(images[indices], indices, params["domain"], params["size"], params["style_seed"])
        relabel = {c: i for i, c in enumerate(classes)}
        self.labels = np.array([relabel[c] for c in targets[indices]], dtype=np.int64)
        self.num_classes = len(classes)
        self.class_names = [str(c) for c in classes]
        self.shots, self.val_shots = params["shots"], params["val_shots"]
        self.revision = f"digit-domains-{GENERATOR_VERSION}-sklearn-digits-{len(targets)}"

    def split_indices(self, seed: int) -> dict[str, np.ndarray]:
        """Positions (into `images`) of each split for `seed`, sorted."""
        import numpy as np

        rng = np.random.default_rng([seed, _STREAMS["splits"]])
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            if self.shots + self.val_shots >= len(members):
                raise ValueError(f"class {self.class_names[label]} has {len(members)} images in this pool, too few "
                                 f"for {self.shots} shots + {self.val_shots} validation images + a test split")
            parts["train"] += members[:self.shots].tolist()
            parts["val"] += members[self.shots:self.shots + self.val_shots].tolist()
            parts["test"] += members[self.shots + self.val_shots:].tolist()
        return {name: np.sort(np.asarray(ix, dtype=np.int64)) for name, ix in parts.items()}

    def splits(self, seed: int) -> Splits:
        parts = self.split_indices(seed)
        return Splits(**{name: Split(examples=list(self.images[ix]), labels=self.labels[ix])
                         for name, ix in parts.items()})


class DigitDomains(Target):
    name = "digit-domains"
    version = "1"
    description = "scikit-learn's digits in one style (clean, thick, rotate-blur, inverted, drawn): domain shifts"
    params = {
        "domain": Param(str, "clean", "the style: clean, thick (mild shift), rotate-blur, inverted or drawn "
                                      "(severe)", choices=DOMAINS),
        "pool": Param(str, "all", "which fixed third of the 1797 digits: pretrain, source or target (give "
                                  "each role of an adaptation its own, so no digit is in two), or all",
                      choices=POOLS),
        "classes": Param(list, list(range(10)), "digit classes to keep, relabelled 0..k-1 in this order",
                         items=int),
        "shots": Param(int, 30, "training images per class (seeded draw from the pool)", min=1),
        "val_shots": Param(int, 10, "validation images per class; the rest of the pool is the test split",
                           min=0),
        "size": Param(int, 32, "side of the square images in pixels", min=8, max=128),
        "style_seed": Param(int, 0, "seed of the pools and of the per-image styling (not the run's seed)", min=0),
    }

    def modality(self, params: dict) -> str:
        return "image"

    def check(self, params: dict, env: Env) -> None:
        from tlbench.errors import ParamError

        classes = params["classes"]
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ParamError(f"classes: expected at least two distinct digits 0-9, got {classes!r}")
        smallest = 58 if params["pool"] != "all" else 174  # the smallest class of a third, of all
        if params["shots"] + params["val_shots"] >= smallest:
            raise ParamError(f"shots: {params['shots']} + val_shots {params['val_shots']} leave no test images in "
                             f"the smallest class of pool {params['pool']!r} ({smallest} images)")

    def load(self, params: dict, env: Env) -> DigitDomainsData:
        self.check(params, env)
        return DigitDomainsData(params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(DigitDomains())
