"""The digits target reads scikit-learn's bundled file itself: the same data as
`load_digits`, without importing scikit-learn (seconds in every planning and worker process)."""

import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from tlbench_builtin.digits import DigitsData, load_digit_images


def test_same_images_and_labels_as_load_digits():
    images, labels = load_digit_images()
    digits = load_digits()
    assert images.dtype == digits.images.dtype and labels.dtype == digits.target.dtype
    assert np.array_equal(images, digits.images)
    assert np.array_equal(labels, digits.target)


def test_loading_the_target_does_not_import_sklearn():
    code = ("import sys\nfrom tlbench_builtin.digits import DigitsData\n"
            "data = DigitsData([5, 6], 3, 2)\nprint(len(data.labels), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    digits = load_digits()
    assert out == [str(int(np.isin(digits.target, [5, 6]).sum())), "False"]


def test_relabelled_subset_matches_load_digits():
    data = DigitsData([7, 2], shots=3, val_shots=2)
    digits = load_digits()
    keep = np.isin(digits.target, [7, 2])
    assert np.array_equal(data.images, np.round(digits.images[keep] * (255.0 / 16.0)).astype(np.uint8))
    assert np.array_equal(data.labels, np.where(digits.target[keep] == 7, 0, 1))
    assert data.revision == "sklearn-digits-1797"
