"""Strategy `erm`: source-only training, the domain-adaptation baseline.

Empirical risk minimisation on the labelled domain alone: the pretrained source is
fine-tuned with a new head on the labelled domain's training split (the recipe of
`full-finetune`) and scored on the unlabelled domain's test split. It never reads the
unlabelled domain's examples while training (a `dev` or `snd` selection reads them to
choose the epoch). Its record also carries the labelled domain's test accuracy
(`details.by_role.labelled`), so a report can give the domain gap: ERM's accuracy on the
labelled domain's test split minus on the unlabelled domain's. Every adaptation of the
same source, groups and seed is compared with it (NT of the adaptation).
"""

from __future__ import annotations

import tlbench

from .adaptation import AdaptationStrategy, Method, requirements


class ERM(AdaptationStrategy):
    name = "erm"
    compared_with = None  # ERM is what the methods are compared with
    version = "1"
    description = "domain adaptation baseline: fine-tune on the labelled domain only, score on the unlabelled one"
    requires = requirements(None)

    def method(self, params: dict, run, model) -> Method:
        return Method(reads_unlabelled=False, settings={"family": "source-only"})


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(ERM())
