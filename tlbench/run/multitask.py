"""The 'multitask' kind: a strategy trains one model on a task group; each member is scored.

The strategy returns predictions for every split of every member (the scored role's as
`FitResult.predictions`, the others' as `FitResult.role_predictions`). Each member is
scored here by its own task against the labels the worker held back, into the record's
metrics under the member's role (`tlbench.results.multitask`). How the run compares
with its members' single-task runs (Δ per task, Δm) is added by the driver once those
records are in (`tlbench.runner.finalize`), and recomputed by reports from them.
"""

from __future__ import annotations

from ..results.multitask import member_key
from .fit import score_predictions


def execute(worker, spec, context, held) -> tuple[dict, dict]:
    from .execute import plain_json

    strategy = worker.registry.get("strategy", spec.recipe.plugin).item
    result = strategy.fit(spec.recipe.params, context)
    who = f"strategy {spec.recipe.plugin!r}"
    metrics: dict = {}
    targets: dict = {}
    unknown = sorted(set(result.role_predictions) - set(context.roles))
    if unknown:
        raise ValueError(f"{who} returned role_predictions for {unknown[0]!r}, which is not a member of this "
                         f"run's group ({', '.join(context.roles)})")
    for (role, entry), content_hash in zip(spec.targets, spec.content_hashes or (None,) * len(spec.targets)):
        member = context.role(role)
        predictions = result.predictions if role == spec.scored else result.role_predictions.get(role)
        if predictions is None:
            raise ValueError(f"{who} returned no predictions for member {role!r} of the group")
        scored = score_predictions(member.task, member.target, held[role], predictions, f"{who} ({role})")
        metrics.update({member_key(role, key): value for key, value in scored.items()})
        info = member.target
        targets[role] = {"content_hash": content_hash, "revision": info.revision, "num_classes": info.num_classes,
                         "modality": info.modality, "task": info.task,
                         **({"class_ids": list(info.class_ids)} if info.class_ids is not None else {})}
    metrics["trainable_params"] = int(result.trainable_params)
    metrics["total_params"] = int(result.total_params)
    details = {"strategy": plain_json(result.info, f"{who} FitResult.info"),
               "source": plain_json(context.source.meta, f"source {spec.source.plugin!r} SourceModel.meta"),
               "targets": targets, "sampling": spec.sampling, "weights_id": context.source.weights_id}
    objectives = {role: context.role(role).objective.info() for role in context.roles
                  if context.role(role).objective is not None and context.role(role).objective.info()}
    if objectives:
        details["objectives"] = plain_json(objectives, "the tasks' Objective.info")
    if result.selection is not None:
        details["selection"] = plain_json(result.selection, f"{who} FitResult.selection")
    return metrics, details
