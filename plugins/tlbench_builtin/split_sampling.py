"""Drawing train / val / test index sets from a labelled data set, per seed.

Shared by the `hf-dataset` and `imagefolder` targets. The rules, in order:

1. **test**: the data set's test split; when it has none, `test_fraction` of the
   training pool is carved out. Both this carve and the optional `n_test` cap use a
   fixed draw, the same for every seed, so every seed is scored on the same examples.
2. **val**: in few-shot settings (`shots`, `n_train` or `protocol`) a small validation
   set is drawn: `val_shots` per class (default: as many as `shots`) or `n_val` in total
   (default: a quarter of `n_train`, so VTAB-1k's 800 + 200). It comes from the data
   set's validation split when there is one, else it is carved from the training pool.
   With the full training set, val is the whole validation split, or `val_fraction` of
   the training pool. These draws depend on the run's seed.
3. **train**: from what is left of the training pool, `shots` per class, `n_train` in
   total (not stratified, as in VTAB), or everything. Seeded.

Detection counts images, and `n_train` and `n_val` draw them stratified as well as boxes
allow (`box_strata`): each image falls in the stratum of the rarest class among its
boxes (images without a box in their own), and each stratum gives its share of the
draw, so rare classes are not left out of a few-shot draw by chance.

Indices come back sorted, so the examples keep the data set's order and two loads of
the same data give the same content hash. `sampled_splits` turns them into the
target's `Splits`.

Labels are indexed by rows only, so any task's labels can be drawn: class ids (n,),
multi-hot rows (n, K), values (n,) or (n, k). Only the per-class draws (`shots`,
`val_shots`) read them, and those need one class per example: for the other tasks
`check_sampling` refuses them before any data is read (and `draw` again if the labels
it is given are not class ids), pointing at the counts `n_train` and `n_val`, which draw
without looking at labels.

numpy is imported inside the functions: the targets import this module when they
register, and `tlbench list` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tlbench.api import Split, Splits
from tlbench.errors import ParamError
from tlbench.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

VTAB_1K = {"n_train": 800, "n_val": 200}

SAMPLING_PARAMS: dict[str, Param] = {
    "shots": Param(int, None, "training examples per class (seeded draw; classification only, else use "
                              "n_train); default: all", min=1),
    "n_train": Param(int, None, "training examples in total (seeded, not stratified)", min=1),
    "val_shots": Param(int, None, "few-shot validation examples per class (default: as many as shots; "
                                  "classification only, else use n_val)", min=1),
    "n_val": Param(int, None, "validation examples in total (default with n_train: a quarter of it)", min=1),
    "protocol": Param(str, None, "'vtab-1k': 800 training + 200 validation examples (sets n_train, n_val)",
                      choices=("vtab-1k",)),
    "val_fraction": Param(float, 0.1, "share of the training pool held out for validation when the data "
                                      "set has no validation split (full-data setting)", min=0.0, max=0.9),
    "test_fraction": Param(float, 0.2, "share of the training pool held out for testing when the data set "
                                       "has no test split (the same examples for every seed)",
                           min=0.01, max=0.9),
    "n_test": Param(int, None, "cap on test examples (the same draw for every seed); default: all", min=1),
}
"""Parameters every sampled target takes; validated by `check_sampling`."""

_TEST_SEED = 0x7E57
_STREAMS = {"test": 1, "val": 2, "train": 3}


@dataclass
class Pools:
    """Row indices and labels of the data set's own splits (val and test may be absent)."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    test: np.ndarray | None = None
    test_labels: np.ndarray | None = None


@dataclass
class Drawn:
    """Sorted row indices of each split, into the split they were drawn from."""

    train: np.ndarray
    val: np.ndarray
    val_from: str
    """'val' (the data set's validation split) or 'train' (carved from the training pool)."""
    test: np.ndarray
    test_from: str


def resolved(params: dict) -> dict:
    """The sampling settings with `protocol` expanded and few-shot defaults filled in."""
    out = {key: params.get(key, param.default) for key, param in SAMPLING_PARAMS.items()}
    if out["protocol"] == "vtab-1k":
        out.update(VTAB_1K)
    if out["shots"] is not None and out["val_shots"] is None and out["n_val"] is None:
        out["val_shots"] = out["shots"]
    if out["n_train"] is not None and out["val_shots"] is None and out["n_val"] is None:
        out["n_val"] = max(1, out["n_train"] // 4)
    return out


PER_CLASS = ("shots", "val_shots")
"""The parameters that draw per class, which only class ids allow."""


def per_class_refused(key: str, labels: str) -> ParamError:
    """The one-line refusal of a per-class draw (`key`) for `labels` that are not class ids."""
    counts = "n_train (and n_val)" if key == "shots" else "n_val"
    return ParamError(f"{key}: per-class draws need one class per example, which {labels} do not have; "
                      f"draw by count with {counts} instead")


def check_sampling(params: dict, task: str = "classification") -> None:
    """Reject settings that contradict each other or the target's `task` (cheap; no data read)."""
    given = {key for key in ("shots", "n_train", "val_shots", "n_val") if params.get(key) is not None}
    if task != "classification":
        per_class = [key for key in PER_CLASS if key in given]
        if per_class:
            raise per_class_refused(per_class[0], f"the {task} task's labels")
    if params.get("protocol") and given & {"shots", "n_train", "n_val"}:
        raise ParamError(f"protocol: {params['protocol']!r} sets the split sizes itself; remove "
                         f"{', '.join(sorted(given & {'shots', 'n_train', 'n_val'}))}")
    if {"shots", "n_train"} <= given:
        raise ParamError("shots and n_train: give one (per class, or in total), not both")
    if {"val_shots", "n_val"} <= given:
        raise ParamError("val_shots and n_val: give one (per class, or in total), not both")


def _rng(seed: int, stream: str) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, _STREAMS[stream]]))


def _per_class(indices: np.ndarray, labels: np.ndarray, k: int, rng, what: str,
               class_names: list[str]) -> np.ndarray:
    import numpy as np

    chosen = []
    for label, name in enumerate(class_names):  # every class, so a missing one is an error
        members = indices[labels == label]
        if len(members) < k:
            raise ParamError(f"{what}: class {name!r} has only {len(members)} examples to draw {k} from")
        chosen.append(rng.permutation(members)[:k])
    return np.concatenate(chosen) if chosen else indices[:0]


def _total(indices: np.ndarray, n: int, rng, what: str, labels: np.ndarray | None = None) -> np.ndarray:
    if n > len(indices):
        raise ParamError(f"{what}: asked for {n} examples, only {len(indices)} are available")
    strata = box_strata(labels) if labels is not None else None
    if strata is None:
        return rng.permutation(indices)[:n]
    return _stratified(indices, strata, n, rng)


def box_strata(labels: np.ndarray) -> np.ndarray | None:
    """For detection labels (dicts with 'classes'), each image's stratum: the rarest class
    among its boxes (by how many images of the pool hold it), or -1 for an image with no
    box; None for other labels."""
    import numpy as np

    if labels.dtype != object or not len(labels) or not isinstance(labels[0], dict) or "classes" not in labels[0]:
        return None
    present = [np.unique(np.asarray(label["classes"], dtype=np.int64)) for label in labels]
    counts = np.bincount(np.concatenate([*present, np.zeros(0, np.int64)]))
    return np.array([int(p[np.argmin(counts[p])]) if len(p) else -1 for p in present], dtype=np.int64)


def _stratified(indices: np.ndarray, strata: np.ndarray, n: int, rng) -> np.ndarray:
    """`n` of `indices` drawn per stratum in proportion to its size (largest remainders
    first, ties by stratum), each stratum's members in a seeded order."""
    import numpy as np

    keys, sizes = np.unique(strata, return_counts=True)
    quota = sizes * n / len(indices)
    take = np.floor(quota).astype(np.int64)
    for k in np.argsort(-(quota - take), kind="stable")[:n - int(take.sum())]:
        take[k] += 1
    chosen = [rng.permutation(indices[strata == key])[:count] for key, count in zip(keys, take)]
    return np.concatenate(chosen)


def _fraction(indices: np.ndarray, fraction: float, rng) -> np.ndarray:
    n = int(round(len(indices) * fraction))
    return rng.permutation(indices)[:n] if n else indices[:0]


def draw(pools: Pools, params: dict, seed: int, class_names: list[str]) -> Drawn:
    """The index sets of one seed, following the rules in the module docstring."""
    import numpy as np

    settings = resolved(params)
    pool, pool_labels = pools.train, pools.train_labels
    per_class = [key for key in PER_CLASS if settings[key] is not None]
    if per_class and (pool_labels.ndim != 1 or pool_labels.dtype.kind not in "iu"):
        raise per_class_refused(per_class[0], f"{pool_labels.dtype} labels of shape {pool_labels.shape}")

    def without(taken: np.ndarray):
        keep = ~np.isin(pool, taken)
        return pool[keep], pool_labels[keep]

    # 1. test: the data set's, or a fixed carve from the training pool
    fixed = np.random.default_rng(_TEST_SEED)
    if pools.test is not None:
        test, test_from = pools.test, "test"
    else:
        test, test_from = _fraction(pool, settings["test_fraction"], fixed), "train"
        pool, pool_labels = without(test)
    if settings["n_test"] is not None and settings["n_test"] < len(test):
        test = fixed.permutation(test)[:settings["n_test"]]

    # 2. val: drawn (few-shot) or whole (full data), from the val split or the pool
    rng = _rng(seed, "val")
    if pools.val is not None:
        source, source_labels, val_from = pools.val, pools.val_labels, "val"
    else:
        source, source_labels, val_from = pool, pool_labels, "train"
    if settings["val_shots"] is not None:
        val = _per_class(source, source_labels, settings["val_shots"], rng, "val_shots", class_names)
    elif settings["n_val"] is not None:
        val = _total(source, settings["n_val"], rng, "n_val", source_labels)
    elif val_from == "val":
        val = source
    else:
        val = _fraction(source, settings["val_fraction"], rng)
    if val_from == "train":
        pool, pool_labels = without(val)

    # 3. train: from what is left
    rng = _rng(seed, "train")
    if settings["shots"] is not None:
        train = _per_class(pool, pool_labels, settings["shots"], rng, "shots", class_names)
    elif settings["n_train"] is not None:
        train = _total(pool, settings["n_train"], rng, "n_train", pool_labels)
    else:
        train = pool
    if not len(train):
        raise ParamError("the training split is empty after holding out validation and test examples")
    return Drawn(train=np.sort(train), val=np.sort(val), val_from=val_from, test=np.sort(test),
                 test_from=test_from)


def sampled_splits(labels: dict[str, np.ndarray], params: dict, seed: int, class_names: list[str],
                   examples: Callable[[str, np.ndarray], Sequence[Any]]) -> Splits:
    """The `Splits` of one seed, drawn from a data set's own splits.

    `labels` maps each split the data set has ('train', and optionally 'val' and
    'test') to the labels of all its rows; ``examples(split, indices)`` gives the
    examples of those rows of that split, in order.
    """
    import numpy as np

    def pool(split: str):
        if split not in labels:
            return None, None
        return np.arange(len(labels[split])), labels[split]

    drawn = draw(Pools(*pool("train"), *pool("val"), *pool("test")), params, seed, class_names)

    def make(indices: np.ndarray, source: str) -> Split:
        return Split(examples=examples(source, indices), labels=labels[source][indices])

    return Splits(train=make(drawn.train, "train"), val=make(drawn.val, drawn.val_from),
                  test=make(drawn.test, drawn.test_from))
