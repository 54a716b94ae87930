"""The 'run' kind: a strategy trains on its targets and predicts; the task scores it.

The strategy returns predictions for every split of the scored target. They are scored
here, by the task, against labels the worker held back (the strategy never had the
test labels), into ``<split>_<metric>`` for every metric the task reports, and the
overfitting gap of the headline: train − test when higher is better, test − train
when lower is, so that a positive gap always means "better on what it trained on".
"""

from __future__ import annotations

from ..api import SPLITS, Split, Splits


def score_predictions(task, target, splits: Splits, predictions: dict, who: str) -> dict:
    """Every metric of `task` on every split, the split sizes, and the overfitting gap."""
    metrics: dict = {}
    for name in SPLITS:
        labels = getattr(splits, name).labels
        n = len(labels)
        metrics[f"n_{name}"] = n
        values: dict = {spec.name: None for spec in task.metrics}
        if n:
            if name not in predictions:
                raise ValueError(f"{who} returned no predictions for split {name!r}")
            try:
                task.check_predictions(predictions[name], n, target)
            except ValueError as exc:
                raise ValueError(f"{who} returned predictions for split {name!r} that the {task.name} task "
                                 f"cannot score: {exc}") from None
            values.update(task.score(predictions[name], labels, target))
        for metric, value in values.items():
            metrics[f"{name}_{metric}"] = None if value is None else float(value)
    headline = task.metric(task.headline)
    train, test = metrics[f"train_{headline.name}"], metrics[f"test_{headline.name}"]
    if train is not None and test is not None:
        metrics["overfitting_gap"] = (train - test) if headline.higher_is_better else (test - train)
    return metrics


def execute(worker, spec, context, held: dict[str, Splits]) -> tuple[dict, dict]:
    from .execute import plain_json

    strategy = worker.registry.get("strategy", spec.recipe.plugin).item
    stats = worker.feature_cache().stats
    hits, misses = stats.hits, stats.misses
    result = strategy.fit(spec.recipe.params, context)
    who = f"strategy {spec.recipe.plugin!r}"
    metrics = score_predictions(context.task, context.target, held[spec.scored], result.predictions, who)
    metrics["trainable_params"] = int(result.trainable_params)
    metrics["total_params"] = int(result.total_params)
    target = context.target
    details = {"strategy": plain_json(result.info, f"{who} FitResult.info"),
               "source": plain_json(context.source.meta, f"source {spec.source.plugin!r} SourceModel.meta"),
               "target": {"content_hash": spec.content_hash, "revision": target.revision,
                          "num_classes": target.num_classes, "modality": target.modality, "task": target.task,
                          **({"class_ids": list(target.class_ids)} if target.class_ids is not None else {})},
               "feature_cache": {"hits": stats.hits - hits, "misses": stats.misses - misses},
               "weights_id": context.source.weights_id}
    objective = context.objective.info() if context.objective is not None else {}
    if objective:
        details["objective"] = plain_json(objective, f"task {context.task.name!r} Objective.info")
    if result.selection is not None:
        details["selection"] = plain_json(result.selection, f"{who} FitResult.selection")
    if context.revealed:  # labels the roles withhold, given because the recipe asked: an upper bound
        details["revealed"] = list(context.revealed)
    by_role = score_other_roles(context, held, spec, result, who)
    if by_role:
        details["by_role"] = by_role
    if worker.saves_predictions(spec) and metrics["n_test"]:
        from ..results.predictions import ATTACHMENTS, attach

        saved = context.task.saved_predictions(result.predictions["test"], held[spec.scored].test.labels, target)
        attach(details, details.setdefault(ATTACHMENTS, {}), saved, "test")
    return metrics, details


def score_other_roles(context, held: dict[str, Splits], spec, result, who: str) -> dict:
    """The metrics of the predictions a strategy gave for targets other than the scored
    one, by role, for the splits it predicted (scored against the labels the worker held)."""
    by_role = {}
    for role, predictions in result.role_predictions.items():
        if role == spec.scored or role not in held:
            raise ValueError(f"{who} returned role_predictions for {role!r}, which is not one of this run's "
                             f"other roles ({', '.join(r for r in held if r != spec.scored) or 'none'})")
        target = context.role(role)
        splits = held[role]
        partial = Splits(*(getattr(splits, name) if name in predictions else Split([], [])
                           for name in ("train", "val", "test")))
        metrics = score_predictions(target.task, target.target, partial, predictions, f"{who} ({role})")
        by_role[role] = {"task": target.task.name, "metrics": metrics}
    return by_role
