"""What a multi-task run records and how it is compared with single-task learning.

A multi-task run trains one model on a task group and writes one record. Its metrics
hold each member's metrics under the member's role, ``<role>/<split>_<metric>`` (every
metric of the member's task on every split, its split sizes and overfitting gap), and
what compares the run with the single-task runs of its members (same recipe, source and
seed, `RunSpec.members`) and with their from-scratch baselines:

- ``<role>/delta``: the member's relative improvement over its single-task run, averaged
  over its task's metrics first (Maninis et al. 2019; Vandenhende et al. 2021):
  Δ_i = mean over metrics j of s_j (M_mtl,j − M_stl,j) / |M_stl,j|, s_j = +1 when
  higher is better and −1 when lower is; metrics missing on either side, or whose
  single-task value is 0 (no relative change), are left out of the mean and named in
  the record (``details.multitask``);
- ``delta_m``: Δm, the mean of the members' Δ_i (a fraction: 0.05 is +5 %);
- ``tasks_hurt``: how many members have Δ_i < 0 (negative transfer between tasks);
- ``<role>/vs_single_task`` and ``<role>/negative_transfer``: the test headline minus the
  single-task run's and the from-scratch run's, signed by the headline's direction.

The baseline is always the single-task run; never the multi-task model's own first
epoch (a trap of some libraries, which then measure training, not transfer).
"""

from __future__ import annotations

from .records import SPLIT_NAMES, headline_spec, task_metric_keys

MEMBER_METRICS = ("n_train", "n_val", "n_test", "overfitting_gap", "negative_transfer", "vs_single_task", "delta")
"""Per-member metrics besides its task's (``<role>/<name>``)."""
GROUP_METRICS = ("delta_m", "tasks_hurt", "wall_seconds", "peak_memory_mb", "trainable_params", "total_params")
"""Metrics of the whole multi-task run."""
SEP = "/"


def member_key(role: str, key: str) -> str:
    return f"{role}{SEP}{key}"


def member_metric_keys(role: str, task: dict) -> list[str]:
    return [member_key(role, key) for key in [*task_metric_keys(task)[:-1], *MEMBER_METRICS]]


def multitask_metric_keys(tasks: dict[str, dict]) -> list[str]:
    """Every metric key a multi-task record of these members (role → task) has."""
    keys = [key for role, task in tasks.items() for key in member_metric_keys(role, task)]
    return keys + list(GROUP_METRICS)


def member_metrics(metrics: dict, role: str) -> dict:
    """A member's metrics without its role prefix."""
    prefix = role + SEP
    return {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}


def relative_delta(task: dict, ours: dict, stl: dict) -> tuple[float | None, list[str]]:
    """(Δ_i of a member over its single-task run, the metrics it averaged), from the test
    metrics of both (unprefixed ``test_<metric>`` keys)."""
    terms, used = [], []
    for spec in task["metrics"]:
        key = f"test_{spec['name']}"
        mine, theirs = ours.get(key), stl.get(key)
        if mine is None or theirs is None or theirs == 0:
            continue
        sign = 1.0 if spec["higher_is_better"] else -1.0
        terms.append(sign * (mine - theirs) / abs(theirs))
        used.append(spec["name"])
    return (sum(terms) / len(terms) if terms else None), used


def headline_difference(task: dict, ours: dict, other: dict) -> float | None:
    key = f"test_{task['headline']}"
    if ours.get(key) is None or other.get(key) is None:
        return None
    difference = ours[key] - other[key]
    return difference if headline_spec(task)["higher_is_better"] else -difference


def compare_with_single_task(tasks: dict[str, dict], metrics: dict, stl: dict[str, dict],
                             scratch: dict[str, dict]) -> tuple[dict, dict]:
    """(the comparison metrics of a multi-task run, an account for its details) from the
    metrics of each member's single-task and from-scratch records (role → their metrics;
    a member whose run is missing has none)."""
    out: dict = {}
    account: dict = {}
    deltas = []
    for role, task in tasks.items():
        ours = member_metrics(metrics, role)
        delta, used = (relative_delta(task, ours, stl[role]) if role in stl else (None, []))
        out[member_key(role, "delta")] = delta
        out[member_key(role, "vs_single_task")] = headline_difference(task, ours, stl[role]) if role in stl else None
        out[member_key(role, "negative_transfer")] = (headline_difference(task, ours, scratch[role])
                                                      if role in scratch else None)
        account[role] = {"delta_metrics": used, "single_task": role in stl, "from_scratch": role in scratch}
        deltas.append(delta)
    complete = all(delta is not None for delta in deltas) and deltas
    out["delta_m"] = sum(deltas) / len(deltas) if complete else None
    out["tasks_hurt"] = sum(1 for delta in deltas if delta is not None and delta < 0) if complete else None
    return out, account


def ranges(tasks: dict[str, dict]) -> dict[str, tuple[float | None, float | None]]:
    """The range of every bounded metric of a multi-task record (for validation)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for role, task in tasks.items():
        for spec in task["metrics"]:
            for split in SPLIT_NAMES:
                out[member_key(role, f"{split}_{spec['name']}")] = (spec.get("low"), spec.get("high"))
        head = headline_spec(task)
        if head.get("low") is not None and head.get("high") is not None:
            width = head["high"] - head["low"]
            for name in ("overfitting_gap", "negative_transfer", "vs_single_task"):
                out[member_key(role, name)] = (-width, width)
        for name in ("n_train", "n_val", "n_test"):
            out[member_key(role, name)] = (0.0, None)
    out["tasks_hurt"] = (0.0, float(len(tasks)))
    return out

