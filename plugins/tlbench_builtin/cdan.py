"""Strategy `cdan`: conditional domain-adversarial training (Long et al. 2018), optionally CDAN+E.

DANN's discriminator sees the features alone; CDAN's sees them conditioned on the
classifier's predictions, through the multilinear map T(f, g) = g ⊗ f (the outer
product of the softmax predictions g and the features f, flattened), so it can align
the class-conditional distributions and not only the marginals:

    loss = CE(labelled) + trade_off · ½ [w-mean_s BCE(D(R_λ(T(f_s, g_s))), 1)
                                        + w-mean_t BCE(D(R_λ(T(f_t, g_t))), 0)]

with DANN's gradient reversal R_λ and schedule. When features × classes exceeds
`randomized_above` (4096 by default), T is the randomised multilinear map
(R_f f) ⊙ (R_g g) / √d, R_f and R_g fixed standard-normal matrices of d =
`randomized_dim` columns drawn from the run's seed. g is detached, as in the reference
implementations: the conditioning does not train the classifier adversarially.
CDAN+E (`entropy_conditioning = true`) weights each example by w = 1 + exp(−H(g)), so
confident predictions count more; the weights are normalised within each domain and
carry no gradient (the paper's official code lets a reversed gradient flow through
them; TLlib detaches them, as here).
"""

from __future__ import annotations

import tlbench
from tlbench.params import Param

from .adaptation import ADVERSARIAL_PARAMS, ADAPTATION_PARAMS, AdaptationStrategy, Method, requirements


class CDAN(AdaptationStrategy):
    name = "cdan"
    version = "1"
    description = "conditional domain-adversarial training on features x predictions (CDAN, or CDAN+E)"
    requires = requirements(("classification",))
    params = {**ADAPTATION_PARAMS, **ADVERSARIAL_PARAMS,
              "entropy_conditioning": Param(bool, False, "CDAN+E: weight examples by 1 + exp(-entropy)"),
              "randomized_above": Param(int, 4096, "use the randomised multilinear map when features x classes "
                                                   "exceeds this", min=1),
              "randomized_dim": Param(int, 1024, "output size of the randomised multilinear map", min=1)}

    def method(self, params: dict, run, model) -> Method:
        import torch

        from .adaptation import (Means, domain_accuracy, domain_discriminator, domain_loss, entropy, pooled,
                                 reversal_schedule, reverse_gradient, unlabelled_forward)

        features, classes = run.source.feature_dim, run.role("labelled").target.num_classes
        randomized = features * classes > params["randomized_above"]
        width = params["randomized_dim"] if randomized else features * classes
        mapping = multilinear_map(features, classes, params["randomized_dim"], run.seed, run.device) \
            if randomized else outer_product
        discriminator = domain_discriminator(width, params["discriminator_hidden"])
        means = Means()

        def hook(step) -> torch.Tensor:
            f_t, g_t = unlabelled_forward(step, params)
            f = torch.cat([pooled(step.features, "cdan"), pooled(f_t, "cdan")])
            g = torch.cat([step.outputs.float(), g_t.float()]).softmax(dim=1).detach()
            coeff = reversal_schedule(step.progress, params["gamma"])
            logits = discriminator(reverse_gradient(mapping(f, g), coeff))
            n = len(step.features)
            weights = (1.0 + torch.exp(-entropy(g))) if params["entropy_conditioning"] else None
            loss = domain_loss(logits[:n], logits[n:], None if weights is None else weights[:n],
                               None if weights is None else weights[n:])
            means.add(domain_loss=loss, domain_accuracy=domain_accuracy(logits[:n], logits[n:]), reversal=coeff)
            return params["trade_off"] * loss

        return Method(loss_hook=hook, modules={"discriminator": discriminator}, epoch_metrics=means.pop,
                      settings={"family": "adversarial", "trade_off": params["trade_off"], "gamma": params["gamma"],
                                "entropy_conditioning": params["entropy_conditioning"],
                                "map": "randomized" if randomized else "outer product", "map_dim": width,
                                "discriminator": [width, params["discriminator_hidden"],
                                                  params["discriminator_hidden"], 1]})


def outer_product(features, predictions):
    """T(f, g) = g ⊗ f, flattened: (batch, classes × features), class-major."""
    return (predictions.unsqueeze(2) * features.unsqueeze(1)).flatten(1)


def multilinear_map(features: int, classes: int, dim: int, seed: int, device):
    """The randomised multilinear map (R_f f) ⊙ (R_g g) / √dim with fixed standard-normal
    R_f (features × dim) and R_g (classes × dim) drawn from `seed`."""
    import math

    import torch

    generator = torch.Generator().manual_seed(seed)
    r_f = torch.randn(features, dim, generator=generator).to(device)
    r_g = torch.randn(classes, dim, generator=generator).to(device)

    def mapping(f, g):
        return (f @ r_f) * (g @ r_g) / math.sqrt(dim)

    return mapping


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(CDAN())
