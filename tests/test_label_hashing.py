"""Labels are hashed losslessly, whatever their form: class ids keep the bytes tlbench
0.1 hashed (so classification content hashes and run ids carry over), and every other
form is told apart from every other label that differs."""

from __future__ import annotations

import numpy as np

from tlbench.api import Split, Splits, canonical_label_bytes
from tlbench.hashing import splits_content_hash


def test_class_ids_keep_their_eight_bytes():
    for label in (0, 3, np.int64(3), np.int32(3), np.uint8(3)):
        assert canonical_label_bytes(label) == int(label).to_bytes(8, "little", signed=True)


def test_labels_that_differ_hash_differently():
    labels = [2, 2.0, 2.5, 2.5000000001, np.float32(2.5), True, "2", [2], (2, 0), {"a": 2},
              np.array([0, 1, 1]), np.array([0, 1, 1], dtype=np.uint8), np.array([[0, 1, 1]]), None,
              {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64)},
              {"boxes": np.zeros((1, 4)), "labels": np.zeros(1, dtype=np.int64)}]
    encoded = [canonical_label_bytes(label) for label in labels]
    assert len(set(encoded)) == len(labels) - 1  # np.float32(2.5) is the same number as 2.5
    assert canonical_label_bytes(np.float32(2.5)) == canonical_label_bytes(2.5)
    assert canonical_label_bytes([np.array([1.0, 2.0])]) == canonical_label_bytes([np.array([1.0, 2.0])])


def test_float_targets_that_differ_after_the_decimal_point_give_other_content_hashes():
    def splits(last: float) -> Splits:
        examples = [np.full((2, 2), i, dtype=np.uint8) for i in range(4)]
        values = np.array([0.5, 1.25, 3.0, last])
        return Splits(*(Split(examples, values) for _ in range(3)))

    assert splits_content_hash(splits(7.1))[0] != splits_content_hash(splits(7.2))[0]
    assert splits_content_hash(splits(7.1))[0] == splits_content_hash(splits(7.1))[0]
