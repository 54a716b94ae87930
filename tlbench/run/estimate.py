"""The 'estimate' kind: a transferability estimator scores the source for a target from
frozen features of the target's training split, next to (and before) fine-tuning."""

from __future__ import annotations

import math


def execute(worker, spec, context, held) -> tuple[dict, dict]:
    from .execute import plain_json

    estimator = worker.registry.get("estimator", spec.recipe.plugin).item
    stats = worker.feature_cache().stats
    hits, misses = stats.hits, stats.misses
    details: dict = {"source": plain_json(context.source.meta, "SourceModel.meta"),
                     "weights_id": context.source.weights_id,
                     "target": {"content_hash": spec.content_hash, "revision": context.target.revision}}
    metrics: dict = {"n_train": len(context.split("train"))}
    if estimator.requires.source_head and context.source.source_head is None:
        details["not_applicable"] = (f"{spec.recipe.plugin} needs the source's own classifier; "
                                     f"source {spec.source.id!r} has none")
        return metrics, details
    score = float(estimator.estimate(spec.recipe.params, context))
    if not math.isfinite(score):
        raise ValueError(f"estimator {spec.recipe.plugin!r} returned {score}")
    metrics["score"] = score
    details["feature_cache"] = {"hits": stats.hits - hits, "misses": stats.misses - misses}
    return metrics, details
