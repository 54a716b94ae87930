"""Run records: one JSON document per run, the only thing reports read.

A record holds the run's resolved config (its identity), its status, its metrics,
the provenance of the software and machine that produced it, and on failure the
error and traceback. `validate_record` is what `tlbench merge` and the store use to
reject a malformed record without trusting its author.
"""

from __future__ import annotations

from typing import Any

from ..errors import first_line

SCHEMA_VERSION = 1
KINDS = ("run", "estimate")
"""A run trains a strategy; an estimate scores a source with a transferability estimator."""
STATUSES = ("ok", "error", "timeout", "over_memory")
FAILED = ("error", "timeout", "over_memory")

METRIC_KEYS = (
    "test_accuracy", "train_accuracy", "val_accuracy", "overfitting_gap",
    "negative_transfer", "baseline_test_accuracy", "n_train", "n_val", "n_test",
    "wall_seconds", "peak_memory_mb", "trainable_params", "total_params",
)

ESTIMATE_METRIC_KEYS = ("score", "n_train", "wall_seconds", "peak_memory_mb")


def new_record(spec_json: dict, run_id: str, status: str, *, metrics: dict | None = None,
               details: dict | None = None, provenance: dict | None = None,
               error: dict | None = None, started_at: str | None = None,
               finished_at: str | None = None, attempt: int = 1, kind: str = "run") -> dict:
    keys = ESTIMATE_METRIC_KEYS if kind == "estimate" else METRIC_KEYS
    metrics = {key: None for key in keys} | (metrics or {})
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "run_id": run_id,
        "status": status,
        "attempt": attempt,
        "spec": spec_json,
        "metrics": metrics,
        "details": details or {},
        "provenance": provenance or {},
        "error": error,
        "started_at": started_at,
        "finished_at": finished_at,
    }


def error_info(exc: BaseException, tb: str | None = None) -> dict:
    return {"type": type(exc).__name__, "message": first_line(exc), "traceback": tb}


def _require(obj: dict, key: str, kinds, problems: list[str], where: str = "") -> Any:
    value = obj.get(key, ...)
    if value is ...:
        problems.append(f"missing {where}{key}")
        return None
    if not isinstance(value, kinds):
        problems.append(f"{where}{key} has type {type(value).__name__}")
        return None
    return value


def validate_record(record: Any) -> list[str]:
    """Problems that make `record` unusable; empty when it is a valid record."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    if record.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {record.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    kind = record.get("kind")
    if kind not in KINDS:
        problems.append(f"kind is {kind!r}, expected one of {', '.join(map(repr, KINDS))}")
    run_id = _require(record, "run_id", str, problems)
    if run_id is not None and not (run_id.isalnum() and 8 <= len(run_id) <= 64):
        problems.append(f"run_id {run_id!r} is not a hex id")
    if record.get("status") not in STATUSES:
        problems.append(f"status is {record.get('status')!r}, expected one of {', '.join(STATUSES)}")
    spec = _require(record, "spec", dict, problems)
    if spec is not None:
        for part in ("source", "target", "estimator" if kind == "estimate" else "strategy"):
            entry = _require(spec, part, dict, problems, "spec.")
            if entry is not None:
                for key in ("id", "plugin", "version"):
                    _require(entry, key, str, problems, f"spec.{part}.")
                _require(entry, "params", dict, problems, f"spec.{part}.")
        _require(spec, "seed", int, problems, "spec.")
        _require(spec, "baseline", bool, problems, "spec.")
    metrics = _require(record, "metrics", dict, problems)
    if metrics is not None:
        for key, value in metrics.items():
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                problems.append(f"metrics.{key} is not a number")
        headline = "score" if kind == "estimate" else "test_accuracy"
        not_applicable = kind == "estimate" and (record.get("details") or {}).get("not_applicable")
        if record.get("status") == "ok" and not not_applicable \
                and not isinstance(metrics.get(headline), (int, float)):
            problems.append(f"status is ok but metrics.{headline} is missing")
    _require(record, "provenance", dict, problems)
    return problems


def is_done(record: dict | None) -> bool:
    """Only an ok record counts as done; a failure is never cached."""
    return record is not None and record.get("status") == "ok"
