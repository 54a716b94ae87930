"""The splits a run of the selection protocol trains on (`tlbench.plan.search`).

A target gives train / val / test; the protocol decides what a run of it is given:

- a search trial: train and val, and an empty test split. It is scored on val, and a
  trial that holds no test example cannot leak one into a choice, whatever it does;
- a final with ``refit = "train+val"``: train and val joined as its training split, an
  empty val split (nothing is left to select a checkpoint on: it keeps its last epoch,
  as VTAB's refit on 1,000 examples does), and the test split;
- anything else: the splits as they are.

Content hashes are computed on the target's splits before this, so a run's identity
still names the data the target gave; the per-example digests (the feature cache's keys)
follow the examples to their new split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..api import Split, Splits


def _join(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.concatenate([a, b])
    return [*a, *b]


def _empty_like(split: Split) -> Split:
    examples = split.examples[:0] if isinstance(split.examples, np.ndarray) else []
    labels = split.labels[:0] if isinstance(split.labels, np.ndarray) else ([] if split.labels is not None else None)
    return Split(examples, labels)


def protocol_splits(splits: Splits, digests: dict[str, list[bytes]], *, withhold_test: bool,
                    refit: str | None) -> tuple[Splits, dict[str, list[bytes]]]:
    """The splits (and their digests) a run is given: see the module docstring."""
    train, val, test = splits.train, splits.val, splits.test
    digests = dict(digests)
    if refit == "train+val":
        train = Split(_join(train.examples, val.examples), _join(train.labels, val.labels))
        digests["train"] = [*digests.get("train", []), *digests.get("val", [])]
        val, digests["val"] = _empty_like(val), []
    if withhold_test:
        test, digests["test"] = _empty_like(test), []
    return Splits(train=train, val=val, test=test), digests
