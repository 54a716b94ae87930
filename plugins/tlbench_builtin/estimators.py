"""Transferability estimators `logme`, `leep`, `nce` and `h-score`.

Each scores a source for a target from the source's frozen features of the target's
training split (served by the feature cache, like a linear probe's), so ranking all
sources costs one forward pass each. LEEP and NCE also need the source's own
classifier; for a source without one they report "not applicable".
"""

from __future__ import annotations

import tlbench
from tlbench.api import Estimator, Requirements
from tlbench.params import Param


def source_probabilities(run):
    """The source classifier's softmax over its own classes, on the training split."""
    import torch

    head = run.source.source_head
    features = torch.from_numpy(run.features("train").copy())
    with torch.no_grad():
        head = head.to("cpu").eval()
        return torch.softmax(head(features.to(next(head.parameters()).dtype)).double(), dim=1).numpy()


class LogME(Estimator):
    name = "logme"
    version = "1"
    description = "LogME (You et al. 2021): log evidence of a Bayesian linear model on frozen features"
    params = {"max_iter": Param(int, 3000, "fixed-point iterations at most", min=1)}

    def estimate(self, params: dict, run) -> float:
        from .transferability import logme

        return logme(run.features("train"), run.split("train").labels, max_iter=params["max_iter"])


class HScore(Estimator):
    name = "h-score"
    version = "1"
    description = "H-score (Bao et al. 2019): class-mean variance explained by frozen features"

    def estimate(self, params: dict, run) -> float:
        from .transferability import h_score

        return h_score(run.features("train"), run.split("train").labels)


class LEEP(Estimator):
    name = "leep"
    version = "1"
    description = "LEEP (Nguyen et al. 2020): log expected empirical prediction from the source's classifier"
    requires = Requirements(source_head=True)

    def estimate(self, params: dict, run) -> float:
        from .transferability import leep

        return leep(source_probabilities(run), run.split("train").labels)


class NCE(Estimator):
    name = "nce"
    version = "1"
    description = "NCE (Tran et al. 2019): minus H(target label | source's predicted label)"
    requires = Requirements(source_head=True)

    def estimate(self, params: dict, run) -> float:
        from .transferability import nce

        return nce(source_probabilities(run).argmax(1), run.split("train").labels)


@tlbench.hookimpl
def tlbench_register_estimators(register):
    for estimator in (LogME(), HScore(), LEEP(), NCE()):
        register(estimator)
