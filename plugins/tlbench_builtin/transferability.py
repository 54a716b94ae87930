"""Transferability scores from frozen features: LogME, LEEP, NCE and H-score.

Pure numpy, vectorised over classes. Each function takes the target's training split
as features (n, d) or source-class probabilities (n, |Z|) with integer labels (n,),
and returns one number where higher means "expected to transfer better".
"""

from __future__ import annotations

import numpy as np


EPSILON = 1e-5
"""Added to both denominators of the fixed-point updates, as in the authors' code, for the
classes whose exact iteration fails. With fewer examples than feature dimensions a
class's one-hot column can lie in the span of the features: its evidence then rises
towards a noiseless limit as beta grows, and the exact iteration can run off to
alpha = 0 instead (log evidence -inf). With the epsilon it stops near that limit."""


def logme(features: np.ndarray, labels: np.ndarray, *, max_iter: int = 3000, tol: float = 1e-9) -> float:
    """LogME (You et al., 2021): the maximised log evidence of a Bayesian linear model
    from features to each one-hot label column, per example, averaged over classes.

    One eigendecomposition of the features' Gram matrix serves every class; the evidence-maximising prior
    precision alpha and noise precision beta are found per class by the paper's
    fixed-point iteration, all classes at once: exactly, and again with the authors'
    `EPSILON` for a class whose exact iteration gives no finite evidence.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    n, d = f.shape
    classes = np.unique(y)
    targets = (y[:, None] == classes[None, :]).astype(np.float64)  # (n, K)
    sigma, z = _spectrum(f, targets)
    outside = np.maximum((targets ** 2).sum(0) - (z ** 2).sum(0), 0.0)  # residual outside span(F)
    with np.errstate(divide="ignore", invalid="ignore"):  # a failing class is redone below
        evidence = _evidence(sigma, z, outside, *_fixed_point(sigma, z, outside, n, max_iter, tol, 1e-300), n, d)
    failed = ~np.isfinite(evidence)
    if failed.any():
        z, outside = z[:, failed], outside[failed]
        evidence[failed] = _evidence(sigma, z, outside, *_fixed_point(sigma, z, outside, n, max_iter, tol, EPSILON),
                                     n, d)
    return float(np.mean(evidence / n))


def _fixed_point(sigma, z, outside, n: int, max_iter: int, tol: float, epsilon: float):
    """(alpha, beta) per class by MacKay's updates; `epsilon` keeps their denominators
    from vanishing (a floor of 1e-300 is the exact iteration)."""
    alpha = np.ones(z.shape[1])
    beta = np.ones(z.shape[1])
    for _ in range(max_iter):
        shrink = beta * sigma[:, None] / (alpha + beta * sigma[:, None])   # (r, K)
        gamma = shrink.sum(0)
        m2 = (shrink ** 2 * z ** 2 / np.maximum(sigma[:, None], 1e-300)).sum(0)  # m^T m
        res2 = ((1 - shrink) ** 2 * z ** 2).sum(0) + outside              # ||F m - y||^2
        new_alpha = gamma / np.maximum(m2 + epsilon, 1e-300)
        new_beta = (n - gamma) / np.maximum(res2 + epsilon, 1e-300)
        done = np.all(np.abs(new_alpha / alpha - 1) < tol) and np.all(np.abs(new_beta / beta - 1) < tol)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return alpha, beta


def _spectrum(f: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of F^T F and the targets' coordinates along F's left singular vectors.

    Taken from the smaller Gram matrix (d x d or n x n) with one symmetric
    eigendecomposition: much cheaper than an SVD of F when n and d differ a lot.
    """
    from scipy.linalg import eigh

    n, d = f.shape
    if d <= n:
        sigma, v = eigh(f.T @ f, driver="evd")  # divide and conquer: several times LAPACK's default
        sigma = np.clip(sigma, 0.0, None)
        keep = sigma > sigma.max() * 1e-12
        sigma, v = sigma[keep], v[:, keep]
        z = (v.T @ (f.T @ targets)) / np.sqrt(sigma)[:, None]   # U^T y with U = F V / s
    else:
        sigma, u = eigh(f @ f.T, driver="evd")
        sigma = np.clip(sigma, 0.0, None)
        keep = sigma > sigma.max() * 1e-12
        sigma, u = sigma[keep], u[:, keep]
        z = u.T @ targets
    return sigma, z


def _evidence(sigma, z, outside, alpha, beta, n, d):
    """log p(y | F, alpha, beta) per class, from the SVD quantities."""
    shrink = beta * sigma[:, None] / (alpha + beta * sigma[:, None])
    m2 = (shrink ** 2 * z ** 2 / np.maximum(sigma[:, None], 1e-300)).sum(0)
    res2 = ((1 - shrink) ** 2 * z ** 2).sum(0) + outside
    logdet = np.log(alpha + beta * sigma[:, None]).sum(0) + (d - len(sigma)) * np.log(alpha)
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2)


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., 2020): mean log-likelihood of the target labels under the
    'expected empirical predictor' built from the source model's class probabilities."""
    theta = np.asarray(source_probs, dtype=np.float64)
    y = np.asarray(labels)
    n = len(y)
    classes, y_index = np.unique(y, return_inverse=True)
    joint = np.zeros((len(classes), theta.shape[1]))
    np.add.at(joint, y_index, theta)
    joint /= n                                              # P(y, z)
    conditional = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)  # P(y | z)
    likelihood = (theta * conditional[y_index]).sum(1)      # sum_z P(y_i | z) theta_z(x_i)
    return float(np.mean(np.log(np.maximum(likelihood, 1e-300))))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al., 2019): minus the conditional entropy H(Y | Z) of the target
    labels given the source model's hard predictions."""
    z = np.unique(np.asarray(source_labels), return_inverse=True)[1]
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    p_z = joint.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / p_z), 0.0)
    return float(terms.sum())


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al., 2019): tr(cov(f)^+ cov(E[f | y])), how much of the features'
    variance the class means explain (pseudo-inverse for rank-deficient features)."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(0, keepdims=True)
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    sums = np.zeros((y.max() + 1, f.shape[1]))
    np.add.at(sums, y, f)
    means = sums / np.bincount(y)[:, None]
    g = means[y]                                            # each example replaced by its class mean
    cov_f = f.T @ f / len(f)
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-10, hermitian=True) @ cov_g))
