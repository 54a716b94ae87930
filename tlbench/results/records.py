"""Run records: one JSON document per run, the only thing reports read.

A record holds the run's resolved config (its identity), its status, its task (the
metrics it reports, their directions and ranges, and which one is the headline), its
metrics, the provenance of the software and machine that produced it, and on failure
the error and traceback.

`validate_record` is the one check every reader applies — the store, reports and
`tlbench merge` — before trusting a record someone else wrote: the schema, finite and
plausible metrics (within the ranges its own task declares), and an identity that
hashes to its run id. Records of schema version 1 (tlbench 0.1: classification,
accuracy) are read as they are: `task_of` gives them their implicit task.

Every record tlbench writes carries an integrity digest (`seal`, applied by the store's
writer), so that an edit made after it was written shows:

    "integrity": {"sha256": "<64 hex digits>"}

the SHA-256 of the record without its ``integrity`` field, as canonical JSON
(`canonical_record`): keys sorted, separators ``","`` and ``":"`` with no spaces,
non-ASCII escaped (``ensure_ascii``), no NaN or infinities, UTF-8 bytes. Anyone can
recompute it, so it proves no authorship; it makes an edit evident, and `tlbench
validate` backs it with numbers it can derive again (the overfitting gap, the NT score
from the baseline's own record). Records written before tlbench sealed them (0.1) have
none; every reader accepts them, `tlbench validate` says so.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from ..errors import first_line
from ..hashing import config_hash
from .kinds import RUN_KINDS, run_kind

SCHEMA_VERSION = 2
"""2: records carry their task and metrics named after it. 1: tlbench 0.1 (accuracy)."""
READABLE_VERSIONS = (1, 2)
STATUSES = ("ok", "error", "timeout", "over_memory")
FAILED = ("error", "timeout", "over_memory")
SPLIT_NAMES = ("train", "val", "test")

RUN_METRICS = ("overfitting_gap", "negative_transfer", "negative_transfer_relative", "n_train", "n_val",
               "n_test", "wall_seconds", "peak_memory_mb", "trainable_params", "total_params")
"""Metrics of every run record besides its task's (``<split>_<metric>``, ``baseline_test_<headline>``)."""
ESTIMATE_METRICS = ("score", "n_train", "wall_seconds", "peak_memory_mb")
NON_NEGATIVE = ("n_train", "n_val", "n_test", "wall_seconds", "peak_memory_mb", "trainable_params",
                "total_params")

V1_TASK = {"name": "classification", "version": "1", "headline": "accuracy",
           "metrics": [{"name": "accuracy", "higher_is_better": True, "low": 0.0, "high": 1.0,
                        "description": "top-1 accuracy: the argmax of the logits equals the label"}]}
"""The task every schema-1 record implies."""


def task_of(record: dict) -> dict:
    """The record's task: its own, or classification for records that predate tasks."""
    task = record.get("task")
    return task if isinstance(task, dict) else V1_TASK


def headline_spec(task: dict) -> dict:
    return next(spec for spec in task["metrics"] if spec["name"] == task["headline"])


def task_metric_keys(task: dict) -> list[str]:
    """The metric keys a run record of `task` has: every metric on every split, and the
    paired baseline's headline."""
    keys = [f"{split}_{spec['name']}" for split in SPLIT_NAMES for spec in task["metrics"]]
    return keys + [f"baseline_test_{task['headline']}"]


def new_record(spec_json: dict, run_id: str, status: str, *, metrics: dict | None = None,
               details: dict | None = None, provenance: dict | None = None,
               error: dict | None = None, started_at: str | None = None,
               finished_at: str | None = None, attempt: int = 1, kind: str = "run",
               task: dict | None = None, tasks: dict | None = None) -> dict:
    """A record with every metric key its kind and task define (None where not measured).
    A run record's `task` is its scored target's (classification's when not given); a
    multi-task record's `tasks` are its members' (role → task)."""
    if run_kind(kind).multitask:
        from .multitask import multitask_metric_keys

        keys = multitask_metric_keys(tasks or {})
    elif run_kind(kind).scored_by_task:
        task = task or V1_TASK
        keys = [*task_metric_keys(task), *RUN_METRICS]
    else:
        keys = list(ESTIMATE_METRICS)
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "run_id": run_id,
        "status": status,
        "attempt": attempt,
        "spec": spec_json,
        "metrics": {key: None for key in keys} | (metrics or {}),
        "details": details or {},
        "provenance": provenance or {},
        "error": error,
        "started_at": started_at,
        "finished_at": finished_at,
    }
    if task is not None:
        record["task"] = task
    if tasks is not None:
        record["tasks"] = tasks
    return record


INTEGRITY = "integrity"
"""The record's integrity digest: ``{"sha256": <hex of canonical_record(record)>}``."""


def canonical_record(record: dict) -> bytes:
    """The bytes the integrity digest covers: the record without its digest, as canonical JSON."""
    body = {key: value for key, value in record.items() if key != INTEGRITY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def integrity_digest(record: dict) -> str:
    return hashlib.sha256(canonical_record(record)).hexdigest()


def seal(record: dict) -> dict:
    """`record` (plain JSON data) with its integrity digest, computed afresh."""
    body = {key: value for key, value in record.items() if key != INTEGRITY}
    return body | {INTEGRITY: {"sha256": integrity_digest(body)}}


def integrity_problem(record: dict) -> str | None:
    """Why `record`'s integrity digest does not vouch for it (None when it does)."""
    stated = record.get(INTEGRITY)
    if stated is None:
        return "no integrity digest"
    if not isinstance(stated, dict) or not isinstance(stated.get("sha256"), str):
        return f"{INTEGRITY} is not {{\"sha256\": <hex>}}"
    try:
        actual = integrity_digest(record)
    except (TypeError, ValueError):
        return "not plain JSON data: its digest cannot be computed"
    return None if stated["sha256"] == actual else "integrity digest does not match: edited after it was written"


def error_info(exc: BaseException, tb: str | None = None) -> dict:
    return {"type": type(exc).__name__, "message": first_line(exc), "traceback": tb}


def is_done(record: dict | None) -> bool:
    """Only an ok record counts as done; a failure is never cached."""
    return record is not None and record.get("status") == "ok"


# --------------------------------------------------------------------------- validation


def _require(obj: dict, key: str, kinds, problems: list[str], where: str = "") -> Any:
    value = obj.get(key, ...)
    if value is ...:
        problems.append(f"missing {where}{key}")
        return None
    if not isinstance(value, kinds):
        problems.append(f"{where}{key} has type {type(value).__name__}")
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_record(record: Any) -> list[str]:
    """Problems that make `record` unusable; empty when it is a valid record."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    if record.get("schema_version") not in READABLE_VERSIONS:
        problems.append(f"schema_version is {record.get('schema_version')!r}, expected one of "
                        f"{', '.join(map(str, READABLE_VERSIONS))}")
    kind_name = record.get("kind")
    if kind_name not in RUN_KINDS:
        problems.append(f"kind is {kind_name!r}, expected one of {', '.join(map(repr, RUN_KINDS))}")
        return problems
    kind = run_kind(kind_name)
    run_id = _require(record, "run_id", str, problems)
    if run_id is not None and not (run_id.isalnum() and 8 <= len(run_id) <= 64):
        problems.append(f"run_id {run_id!r} is not a hex id")
    if record.get("status") not in STATUSES:
        problems.append(f"status is {record.get('status')!r}, expected one of {', '.join(STATUSES)}")
    spec = _require(record, "spec", dict, problems)
    if spec is not None:
        _spec_problems(spec, kind.recipe, problems)
    task = _task_problems(record, problems) if kind.scored_by_task else None
    tasks = _tasks_problems(record, problems) if kind.multitask else None
    metrics = _require(record, "metrics", dict, problems)
    if metrics is not None:
        _metric_problems(metrics, task, problems, tasks)
        headline = kind.headline(record)
        if record.get("status") == "ok" and headline is not None and not _is_number(metrics.get(headline)):
            problems.append(f"status is ok but metrics.{headline} is missing")
    _require(record, "provenance", dict, problems)
    if not problems and spec is not None:
        problems += identity_problems(record, kind.recipe)
    return problems


def _spec_problems(spec: dict, recipe: str, problems: list[str]) -> None:
    for part in ("source", "target", recipe):
        entry = _require(spec, part, dict, problems, "spec.")
        if entry is not None:
            for key in ("id", "plugin", "version"):
                _require(entry, key, str, problems, f"spec.{part}.")
            _require(entry, "params", dict, problems, f"spec.{part}.")
    _require(spec, "seed", int, problems, "spec.")
    _require(spec, "baseline", bool, problems, "spec.")


def _tasks_problems(record: dict, problems: list[str]) -> dict | None:
    """A multi-task record's tasks by role, if each is well formed."""
    tasks = _require(record, "tasks", dict, problems)
    if tasks is None:
        return None
    if len(tasks) < 2:
        problems.append("tasks must name two or more members")
        return None
    checked = {role: _well_formed_task(task, problems, f"tasks.{role}") for role, task in tasks.items()}
    return None if any(task is None for task in checked.values()) else checked


def _task_problems(record: dict, problems: list[str]) -> dict | None:
    """The record's task, if it is well formed (schema 1 records imply classification)."""
    if record.get("schema_version") == 1:
        return V1_TASK
    task = _require(record, "task", dict, problems)
    return None if task is None else _well_formed_task(task, problems, "task")


def _well_formed_task(task, problems: list[str], where: str) -> dict | None:
    if not isinstance(task, dict):
        problems.append(f"{where} is not an object")
        return None
    name, headline = task.get("name"), task.get("headline")
    metrics = task.get("metrics")
    if not isinstance(name, str) or not isinstance(headline, str) or not isinstance(metrics, list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("higher_is_better"), bool)
            and all(m.get(b) is None or _is_number(m.get(b)) for b in ("low", "high")) for m in metrics):
        problems.append(f"{where} must name the task, its headline and its metrics (name, higher_is_better, low, "
                        f"high)")
        return None
    if headline not in [m["name"] for m in metrics]:
        problems.append(f"{where}.headline {headline!r} is not one of {where}.metrics")
        return None
    return task


def _metric_problems(metrics: dict, task: dict | None, problems: list[str], tasks: dict | None = None) -> None:
    ranges: dict[str, tuple[float | None, float | None]] = {}
    if tasks is not None:
        from .multitask import ranges as multitask_ranges

        ranges.update(multitask_ranges(tasks))
    if task is not None:
        for spec in task["metrics"]:
            for split in SPLIT_NAMES:
                ranges[f"{split}_{spec['name']}"] = (spec.get("low"), spec.get("high"))
        head = headline_spec(task)
        ranges[f"baseline_test_{task['headline']}"] = (head.get("low"), head.get("high"))
        if head.get("low") is not None and head.get("high") is not None:  # a difference of two values
            width = head["high"] - head["low"]
            ranges["overfitting_gap"] = ranges["negative_transfer"] = (-width, width)
    for key, value in metrics.items():
        if value is None:
            continue
        if not _is_number(value):
            problems.append(f"metrics.{key} is not a number")
            continue
        if not math.isfinite(value):
            problems.append(f"metrics.{key} is not finite")
            continue
        low, high = ranges.get(key, (0.0 if key in NON_NEGATIVE else None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(f"metrics.{key} is {value}, outside its range "
                            f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]")


def identity_problems(record: dict, recipe: str) -> list[str]:
    """A record whose stated identity does not hash to its run id, or disagrees with the
    rest of its spec, was edited by hand or copied under the wrong name."""
    spec = record["spec"]
    identity = spec.get("identity")
    if identity is None:
        return []
    if not isinstance(identity, dict):
        return ["spec.identity is not an object"]
    if config_hash(identity, len(record["run_id"])) != record["run_id"]:
        return ["run_id is not the hash of spec.identity"]
    problems = []
    for part in ("source", recipe):
        stated = identity.get(part) if isinstance(identity.get(part), dict) else {}
        for key in ("plugin", "version"):
            if stated.get(key) != spec[part][key]:
                problems.append(f"spec.{part}.{key} differs from spec.identity.{part}.{key}")
    if identity.get("seed") != spec["seed"]:
        problems.append("spec.seed differs from spec.identity.seed")
    targets = identity.get("targets") if isinstance(identity.get("targets"), dict) else None
    if targets is None:
        stated = identity.get("target") if isinstance(identity.get("target"), dict) else {}
        for key in ("plugin", "version", "content_hash"):
            if stated.get(key) != spec["target"].get(key):
                problems.append(f"spec.target.{key} differs from spec.identity.target.{key}")
    return problems
