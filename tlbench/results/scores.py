"""The scores that compare two records: the negative-transfer score of a run against its
paired baseline, in the direction of the task's headline metric.

NT = headline(run) − headline(baseline) when higher is better, baseline − run when
lower is, so NT < 0 always means the run did worse; its relative form divides by the
baseline's magnitude (None when that is 0). For classification this is tlbench 0.1's
NT: test accuracy minus the baseline's test accuracy.
"""

from __future__ import annotations

from .records import headline_spec, task_of


def negative_transfer(record: dict, baseline: dict) -> dict:
    """The metrics a run record gains from its paired baseline's record."""
    task = task_of(record)
    spec = headline_spec(task)
    key = f"test_{task['headline']}"
    ours, theirs = record["metrics"].get(key), baseline["metrics"].get(key)
    if ours is None or theirs is None:
        return {}
    difference = (ours - theirs) if spec["higher_is_better"] else (theirs - ours)
    return {f"baseline_{key}": theirs, "negative_transfer": difference,
            "negative_transfer_relative": difference / abs(theirs) if theirs else None}
