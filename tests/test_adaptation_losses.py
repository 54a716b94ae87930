"""The domain-adaptation losses and selection scores against small hand computations:
DANN's reversal schedule and gradient reversal, CDAN's maps and weights, MCC's row
normalisation, CORAL, the discriminator's loss, DEV's control-variate risk and density
ratios, SND."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlbench_builtin.adaptation import (domain_accuracy, domain_loss, entropy, reversal_schedule,
                                        reverse_gradient)
from tlbench_builtin.cdan import multilinear_map, outer_product
from tlbench_builtin.coral import coral_loss, covariance
from tlbench_builtin.domain_selection import (density_ratios, dev_risk, per_example_losses,
                                              soft_neighbourhood_density)
from tlbench_builtin.mcc import class_confusion, class_confusion_loss


# --------------------------------------------------------------------------- DANN


def test_the_reversal_schedule_is_dann_s():
    assert reversal_schedule(0.0, 10.0) == 0.0
    for p in (0.1, 0.25, 0.5, 0.9, 0.999):
        assert reversal_schedule(p, 10.0) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-15)
    assert reversal_schedule(0.5, 10.0) == pytest.approx(0.98661429815, abs=1e-10)
    values = [reversal_schedule(p / 100, 10.0) for p in range(100)]
    assert values == sorted(values) and values[-1] < 1.0
    assert reversal_schedule(0.7, 0.0) == 0.0  # gamma 0: no adversarial signal at all


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_the_reversed_gradient_is_minus_lambda_times_the_forward_one(coeff):
    torch.manual_seed(0)
    x = torch.randn(5, 4, requires_grad=True)
    weights = torch.randn(4, 3)

    def loss(inputs):
        return ((inputs @ weights).tanh() ** 2).sum()

    (plain,) = torch.autograd.grad(loss(x), x)
    reversed_input = reverse_gradient(x, coeff)
    assert torch.equal(reversed_input, x)  # the identity forward
    (reversed_grad,) = torch.autograd.grad(loss(reversed_input), x)
    assert torch.allclose(reversed_grad, -coeff * plain, rtol=0, atol=1e-7)


def test_the_discriminator_learns_while_the_features_are_pushed_the_other_way():
    """Through the reversal the discriminator's own gradient is the plain one; only what
    flows back into the features is reversed."""
    torch.manual_seed(0)
    features = torch.randn(6, 3, requires_grad=True)
    disc = torch.nn.Linear(3, 1)
    loss = domain_loss(disc(reverse_gradient(features, 0.5))[:3], disc(reverse_gradient(features, 0.5))[3:])
    loss.backward()
    disc_grad, feature_grad = disc.weight.grad.clone(), features.grad.clone()
    disc.zero_grad()
    features.grad = None
    domain_loss(disc(features)[:3], disc(features)[3:]).backward()
    assert torch.allclose(disc.weight.grad, disc_grad, atol=1e-7)
    assert torch.allclose(features.grad, -feature_grad / 0.5, atol=1e-6)


def test_the_domain_loss_averages_each_domain_then_both():
    def softplus(z):
        return math.log1p(math.exp(z))

    s, t = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0], [1.0]])
    by_hand = 0.5 * ((softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0) + softplus(1.0)) / 3)
    assert float(domain_loss(s, t)) == pytest.approx(by_hand, rel=1e-6)
    ws, wt = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0, 1.0])
    weighted = 0.5 * ((softplus(-2.0) + 3 * softplus(1.0)) / 4
                      + (2 * softplus(0.5) + softplus(-3.0) + softplus(1.0)) / 4)
    assert float(domain_loss(s, t, ws, wt)) == pytest.approx(weighted, rel=1e-6)
    assert float(domain_accuracy(s, t)) == pytest.approx(2 / 5)  # 2 > 0 right, -1 wrong; -3 right only


# --------------------------------------------------------------------------- CDAN


def test_cdan_s_outer_product_is_class_major():
    f = torch.tensor([[1.0, 2.0, 3.0]])
    g = torch.tensor([[0.25, 0.75]])
    assert outer_product(f, g).tolist() == [[0.25, 0.5, 0.75, 0.75, 1.5, 2.25]]


def test_cdan_s_randomised_map_is_fixed_by_the_seed_and_multilinear():
    mapping = multilinear_map(5, 3, 64, seed=7, device=torch.device("cpu"))
    again = multilinear_map(5, 3, 64, seed=7, device=torch.device("cpu"))
    torch.manual_seed(0)
    f, g = torch.randn(4, 5), torch.randn(4, 3).softmax(1)
    assert torch.equal(mapping(f, g), again(f, g))
    assert mapping(f, g).shape == (4, 64)
    assert torch.allclose(mapping(2 * f, g), 2 * mapping(f, g), atol=1e-6)  # linear in f
    assert torch.allclose(mapping(f, 3 * g), 3 * mapping(f, g), atol=1e-5)  # and in g
    generator = torch.Generator().manual_seed(7)
    r_f, r_g = torch.randn(5, 64, generator=generator), torch.randn(3, 64, generator=generator)
    assert torch.allclose(mapping(f, g), (f @ r_f) * (g @ r_g) / 8.0, atol=1e-6)


def test_entropy_weights_favour_confident_predictions():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    h = entropy(p)
    assert h.tolist() == pytest.approx([0.0, math.log(2)], abs=1e-6)
    w = 1 + torch.exp(-h)
    assert w.tolist() == pytest.approx([2.0, 1.5], abs=1e-6)


# --------------------------------------------------------------------------- MCC


def mcc_by_hand(logits: np.ndarray, temperature: float) -> tuple[np.ndarray, float]:
    """The paper's recipe, written out with loops."""
    b, k = logits.shape
    z = logits / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = np.array([-sum(q * math.log(q) for q in row) for row in p])
    w = 1 + np.exp(-h)
    w = b * w / w.sum()
    c = np.zeros((k, k))
    for i in range(b):
        for j in range(k):
            for jj in range(k):
                c[j, jj] += p[i, j] * w[i] * p[i, jj]
    rows = np.array([[c[j, jj] / sum(c[j, :]) for jj in range(k)] for j in range(k)])
    loss = sum(rows[j, jj] for j in range(k) for jj in range(k) if j != jj) / k
    return rows, loss


def test_mcc_normalises_rows_as_the_paper_does():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-2.0, 1.0, 3.0], [1.5, 1.4, -0.5]])
    rows, loss = mcc_by_hand(logits, 2.5)
    confusion = class_confusion(torch.tensor(logits, dtype=torch.float64), 2.5)
    assert np.allclose(confusion.numpy(), rows, atol=1e-12)
    assert np.allclose(confusion.sum(1).numpy(), 1.0)  # each row a distribution
    assert float(class_confusion_loss(torch.tensor(logits, dtype=torch.float64), 2.5)) == pytest.approx(loss, abs=1e-12)


def test_tllib_s_column_broadcast_gives_the_same_loss_on_a_symmetric_confusion():
    """TLlib divides C by C.sum(dim=1) through a broadcast (columns); C is symmetric, so
    the loss is the same (docs/strategies.md says which one tlbench implements)."""
    torch.manual_seed(1)
    logits = torch.randn(8, 4, dtype=torch.float64)
    p = (logits / 2.5).softmax(1)
    w = 1 + torch.exp(-entropy(p))
    w = len(p) * w / w.sum()
    c = (p * w[:, None]).T @ p
    assert torch.allclose(c, c.T)
    columns = c / c.sum(dim=1)
    tllib = (columns.sum() - columns.trace()) / 4
    assert float(tllib) == pytest.approx(float(class_confusion_loss(logits, 2.5)), abs=1e-12)


def test_mcc_is_zero_for_confident_distinct_predictions_and_large_for_confused_ones():
    confident = torch.tensor([[50.0, 0, 0], [0, 50.0, 0], [0, 0, 50.0]])
    assert float(class_confusion_loss(confident, 1.0)) == pytest.approx(0.0, abs=1e-6)
    confused = torch.zeros(4, 3)
    assert float(class_confusion_loss(confused, 1.0)) == pytest.approx(2 / 3, abs=1e-6)


# --------------------------------------------------------------------------- CORAL


def test_coral_against_a_hand_computation():
    s = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    t = np.array([[0.0, 0.0], [2.0, 2.0], [1.0, -1.0], [3.0, 1.0]])

    def cov(x):
        n = len(x)
        m = x.mean(0)
        return sum(np.outer(row - m, row - m) for row in x) / (n - 1)

    by_hand = ((cov(s) - cov(t)) ** 2).sum() / (4 * 2 * 2)
    assert np.allclose(covariance(torch.tensor(s)).numpy(), np.cov(s, rowvar=False))
    assert float(coral_loss(torch.tensor(s), torch.tensor(t))) == pytest.approx(by_hand, abs=1e-12)
    assert float(coral_loss(torch.tensor(s), torch.tensor(s + 5.0))) == pytest.approx(0.0, abs=1e-12)  # means ignored
    assert float(coral_loss(torch.tensor(s), torch.tensor(t[:1]))) == 0.0  # one example: no covariance


# --------------------------------------------------------------------------- selection scores


def test_dev_risk_is_the_control_variate_form():
    losses = np.array([0.2, 1.5, 0.7, 0.1, 2.0])
    weights = np.array([0.5, 2.0, 1.0, 0.8, 1.4])
    weighted = weights * losses
    eta = -np.cov(weighted, weights)[0, 1] / np.var(weights, ddof=1)
    assert dev_risk(losses, weights) == pytest.approx(weighted.mean() + eta * weights.mean() - eta, abs=1e-12)
    # equal weights: no variance to remove, the plain mean loss
    assert dev_risk(losses, np.ones(5)) == pytest.approx(losses.mean())
    # weights that average 1 exactly leave the weighted mean as it is
    centred = weights / weights.mean()
    assert dev_risk(losses, centred) == pytest.approx((centred * losses).mean(), abs=1e-12)


def test_density_ratios_follow_the_domain_classifier():
    rng = np.random.default_rng(0)
    source = torch.tensor(rng.normal(0.0, 1.0, (200, 2)))
    target = torch.tensor(rng.normal(1.0, 1.0, (100, 2)))
    query = torch.tensor([[-2.0, -2.0], [0.5, 0.5], [3.0, 3.0]])
    ratios = density_ratios(source, target, query, l2=1e-3)
    assert ratios[0] < 0.2 < ratios[1] < ratios[2]  # target-like points weigh more
    # the true ratio N(1, I) / N(0, I) at (0.5, 0.5) is exactly 1; the fit is close
    assert ratios[1] == pytest.approx(1.0, rel=0.35)


def test_per_example_losses_are_the_objective_s_one_by_one():
    class CrossEntropy:
        def loss(self, outputs, targets):
            return torch.nn.functional.cross_entropy(outputs, targets)

    outputs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 0, 1])
    expected = torch.nn.functional.cross_entropy(outputs, targets, reduction="none").numpy()
    assert np.allclose(per_example_losses(CrossEntropy(), outputs, targets), expected)


def test_snd_against_a_hand_computation():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    tau = 0.5
    unit = p / np.linalg.norm(p, axis=1, keepdims=True)
    entropies = []
    for i in range(3):
        sims = np.array([unit[i] @ unit[j] / tau for j in range(3) if j != i])
        q = np.exp(sims) / np.exp(sims).sum()
        entropies.append(-(q * np.log(q)).sum())
    assert soft_neighbourhood_density(torch.tensor(p), tau) == pytest.approx(np.mean(entropies), abs=1e-12)
    # two tight clusters: each example's neighbour distribution spreads over its own cluster
    clustered = torch.tensor([[1.0, 0], [1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0], [0, 1.0]])
    scattered = torch.tensor([[1.0, 0], [0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.3, 0.7], [0, 1.0]])
    assert soft_neighbourhood_density(clustered, 0.05) > soft_neighbourhood_density(scattered, 0.05)
