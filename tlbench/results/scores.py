"""The scores that compare two records: the negative-transfer score of a run against its
paired from-scratch baseline, and its difference to the runs it is compared with (a
domain-adaptation run and its ERM run), in the direction of the task's headline metric.

NT = headline(run) − headline(baseline) when higher is better, baseline − run when
lower is, so NT < 0 always means the run did worse; its relative form divides by the
baseline's magnitude (None when that is 0). For classification this is tlbench 0.1's
NT: test accuracy minus the baseline's test accuracy. A comparison with the run of
plugin P is recorded as ``nt_vs_<P>``, signed the same way.
"""

from __future__ import annotations

from .records import headline_spec, task_of


def headline_difference(record: dict, other: dict) -> tuple[float, float] | None:
    """(the signed difference of the two records' test headlines, the other's value), or
    None when either lacks it."""
    task = task_of(record)
    key = f"test_{task['headline']}"
    ours, theirs = record["metrics"].get(key), other["metrics"].get(key)
    if ours is None or theirs is None:
        return None
    return ((ours - theirs) if headline_spec(task)["higher_is_better"] else (theirs - ours)), theirs


def negative_transfer(record: dict, baseline: dict) -> dict:
    """The metrics a run record gains from its paired baseline's record."""
    compared = headline_difference(record, baseline)
    if compared is None:
        return {}
    difference, theirs = compared
    return {f"baseline_test_{task_of(record)['headline']}": theirs, "negative_transfer": difference,
            "negative_transfer_relative": difference / abs(theirs) if theirs else None}


def compared_with(record: dict, others: dict[str, dict]) -> dict:
    """`nt_vs_<plugin>` for each run the record is compared with (plugin → its record)."""
    metrics = {}
    for plugin, other in others.items():
        compared = headline_difference(record, other)
        if compared is not None:
            metrics[f"nt_vs_{plugin}"] = compared[0]
    return metrics
