"""SUPERB's weighted sum of layers, learnt with the backbone frozen.

SUPERB (Yang et al. 2021) keeps the upstream speech encoder frozen and trains a softmax
weighting of all its hidden states together with a light downstream head. A closed-form
probe cannot train the weighting, so the linear probe learns it first: the softmax
weights and a linear head (the task's own head and loss, `Objective`) are trained
jointly by Adam on the training split's cached per-layer features (every example at
once: they are a few thousand numbers each), each feature standardised by the training
split's statistics so that one step size suits every layer. The mix is then fixed, the
probe's head is fitted in closed form on the mixed features with its strength chosen on
validation as for any source, and the mix is loaded into the backbone
(`set_layer_mix`), so the model a run returns pools with the mix it learnt, and the
record has it (``details.source.layer_weights``).

The joint head is only a means to the mix: its L2 strength is the weakest of the probe's
grid, the least that keeps it bounded on separable data; the reported head is the
closed-form one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MIX_STEPS = 300
"""Adam steps of the joint fit (full batch)."""
MIX_LR = 0.05


def learn_layer_mix(run, l2: float, steps: int = MIX_STEPS) -> tuple[list[float], dict]:
    """(the mix, one weight per layer summing to one; what the fit did) from the training
    split of `run` (a run's target: per-layer features, objective, seed)."""
    import torch

    layers = torch.from_numpy(run.layer_features("train").copy())  # (examples, layers, features)
    mean, std = layers.mean(dim=0, keepdim=True), layers.std(dim=0, keepdim=True).clamp_min(1e-6)
    layers = (layers - mean) / std
    targets = run.objective.targets(run.split("train").labels)
    logits = torch.zeros(layers.shape[1], requires_grad=True)
    with torch.random.fork_rng(devices=[]):  # seeded here: whether features were cached must not matter
        torch.manual_seed(run.seed)
        head = run.new_head().cpu()  # the task's linear head over pooled features
    optimizer = torch.optim.Adam([logits, *head.parameters()], lr=MIX_LR)
    first = last = None
    for _ in range(steps):
        run.check_budget()
        mixed = (torch.softmax(logits, 0)[None, :, None] * layers).sum(dim=1)
        loss = run.objective.loss(head(mixed), targets) + l2 * head.weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        first = value if first is None else first
        last = value
    mix = [float(w) for w in torch.softmax(logits.detach(), 0)]
    return mix, {"steps": steps, "lr": MIX_LR, "l2": l2, "loss_first": first, "loss_last": last,
                 "rule": "joint fit with a linear head on the training split (SUPERB's weighted sum, backbone frozen)"}


def mixed(features, mix) -> "np.ndarray":
    """Per-layer features (examples, layers, features) mixed to (examples, features)."""
    import numpy as np

    return np.einsum("l,nlf->nf", np.asarray(mix, dtype=np.float32), features).astype(np.float32)
