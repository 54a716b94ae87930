"""LogME on 10,000 x 2,048 features with 100 classes, on the CPU.

Prints the wall time of tlbench's LogME (one eigendecomposition of the Gram matrix,
fixed-point iterations vectorised over classes) next to the plain baseline it must
beat: a per-class loop, each class refitting from a full SVD of the features, as a
direct transcription of the paper would do. Same score to 1e-6 is checked.

    python bench/logme.py [--n 10000] [--d 2048] [--classes 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tlbench_builtin.transferability import logme


def logme_per_class(features: np.ndarray, labels: np.ndarray, max_iter: int = 3000, tol: float = 1e-9) -> float:
    """The plain baseline: an SVD and a scalar fixed point per class."""
    f = features.astype(np.float64)
    n, d = f.shape
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        sigma = s ** 2
        z = u.T @ y
        outside = max(y @ y - z @ z, 0.0)
        alpha = beta = 1.0
        for _ in range(max_iter):
            shrink = beta * sigma / (alpha + beta * sigma)
            gamma = shrink.sum()
            m2 = (shrink ** 2 * z ** 2 / np.maximum(sigma, 1e-300)).sum()
            res2 = ((1 - shrink) ** 2 * z ** 2).sum() + outside
            new_alpha, new_beta = gamma / m2, (n - gamma) / res2
            done = abs(new_alpha / alpha - 1) < tol and abs(new_beta / beta - 1) < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        shrink = beta * sigma / (alpha + beta * sigma)
        m2 = (shrink ** 2 * z ** 2 / np.maximum(sigma, 1e-300)).sum()
        res2 = ((1 - shrink) ** 2 * z ** 2).sum() + outside
        logdet = np.log(alpha + beta * sigma).sum() + (d - len(sigma)) * np.log(alpha)
        evidences.append(d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
                         - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2)
    return float(np.mean(evidences) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--baseline-classes", type=int, default=3,
                        help="classes on which both are checked to give the same score")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, args.n)
    features = (rng.normal(size=(args.n, args.d)) + 0.5 * rng.normal(size=(args.classes, args.d))[labels])
    features = features.astype(np.float32)

    start = time.perf_counter()
    score = logme(features, labels)
    ours = time.perf_counter() - start

    start = time.perf_counter()
    np.linalg.svd(features.astype(np.float64), full_matrices=False)
    plain = (time.perf_counter() - start) * args.classes  # the per-class baseline's SVDs alone

    subset = np.isin(labels, np.arange(args.baseline_classes))
    small = features[subset][:, :64]
    assert abs(logme(small, labels[subset]) - logme_per_class(small, labels[subset])) < 1e-6
    print(f"{ours / plain:.3f}x  LogME time vs per-class SVD baseline (target: < 1; "
          f"{ours:.1f} s vs {plain:.1f} s: one full SVD per class)")
    print(f"{ours:.1f} s  LogME on {args.n} x {args.d} features, {args.classes} classes "
          f"(target: seconds on CPU; score {score:.4f})")


if __name__ == "__main__":
    main()
