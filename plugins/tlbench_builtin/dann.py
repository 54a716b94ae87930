"""Strategy `dann`: domain-adversarial training (Ganin & Lempitsky 2015; Ganin et al. 2016).

A domain discriminator D learns to tell the labelled domain's features (1) from the
unlabelled domain's (0); the features reach it through a gradient-reversal layer, so the
backbone learns to make the two indistinguishable while the head learns the labelled task:

    loss = CE(labelled) + trade_off · ½ [BCE(D(R_λ(f_s)), 1) + BCE(D(R_λ(f_t)), 0)]

R_λ is the identity forward and multiplies the gradient by −λ backward, with
λ_p = 2 / (1 + exp(−γ p)) − 1 over training progress p in [0, 1) (γ = 10): the
adversarial signal is off at the start, while the features are still the source's, and
grows towards 1. D is Linear-BN-ReLU-Linear-BN-ReLU-Linear, 1024 wide (TLlib's), on the
backbone's pooled features (no bottleneck layer); it trains at `lr`.
"""

from __future__ import annotations

import tlbench

from .adaptation import ADVERSARIAL_PARAMS, ADAPTATION_PARAMS, POOLED_TASKS, AdaptationStrategy, Method, requirements


class DANN(AdaptationStrategy):
    name = "dann"
    version = "1"
    description = "domain-adversarial training: a discriminator on features through gradient reversal (DANN)"
    requires = requirements(POOLED_TASKS)
    params = {**ADAPTATION_PARAMS, **ADVERSARIAL_PARAMS}

    def method(self, params: dict, run, model) -> Method:
        import torch

        from .adaptation import (Means, domain_accuracy, domain_discriminator, domain_loss, pooled,
                                 reversal_schedule, reverse_gradient, unlabelled_forward)

        discriminator = domain_discriminator(run.source.feature_dim, params["discriminator_hidden"])
        means = Means()

        def hook(step) -> torch.Tensor:
            source = pooled(step.features, "dann")
            target = pooled(unlabelled_forward(step, params)[0], "dann")
            coeff = reversal_schedule(step.progress, params["gamma"])
            logits = discriminator(reverse_gradient(torch.cat([source, target]), coeff))
            logits_s, logits_t = logits[:len(source)], logits[len(source):]
            loss = domain_loss(logits_s, logits_t)
            means.add(domain_loss=loss, domain_accuracy=domain_accuracy(logits_s, logits_t), reversal=coeff)
            return params["trade_off"] * loss

        return Method(loss_hook=hook, modules={"discriminator": discriminator}, epoch_metrics=means.pop,
                      settings={"family": "adversarial", "trade_off": params["trade_off"], "gamma": params["gamma"],
                                "discriminator": [run.source.feature_dim, params["discriminator_hidden"],
                                                  params["discriminator_hidden"], 1]})


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(DANN())
