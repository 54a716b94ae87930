"""Records to a long pandas table: one row per run, parameters as ``p_*`` columns.

This table is ``results.csv``; every leaderboard number is computed from it.
"""

from __future__ import annotations

import pandas as pd

from ..hashing import canonical_json, config_hash
from ..records import METRIC_KEYS

BASE_COLUMNS = ["run_id", "status", "source", "strategy", "target", "seed", "baseline", "variant",
                "source_plugin", "source_version", "strategy_plugin", "strategy_version",
                "target_plugin", "target_version", "init", "content_hash", "baseline_run_id"]
PROVENANCE_COLUMNS = ["tlbench_version", "torch_version", "timm_version", "transformers_version",
                      "device", "device_name", "host", "git_revision", "deterministic",
                      "started_at", "finished_at", "attempt", "error_type", "error_message"]


def source_label(spec: dict) -> str:
    """Baselines are shown as the random-init twin of the source that defined them."""
    return f"{spec['source']['id']} (random init)" if spec.get("baseline") else spec["source"]["id"]


def variant_of(spec: dict) -> str:
    """What must match for runs to share a leaderboard cell: plugins, versions, parameters."""
    identity = dict(spec.get("identity") or {})
    identity.pop("seed", None)
    target = dict(identity.get("target") or {})
    target.pop("content_hash", None)
    identity["target"] = target
    return config_hash(identity, 8)


def _flat(prefix: str, params: dict) -> dict:
    return {f"p_{prefix}_{key}": (canonical_json(value) if isinstance(value, (list, dict)) else value)
            for key, value in params.items()}


def record_row(record: dict) -> dict:
    spec, prov = record["spec"], record.get("provenance", {})
    versions = prov.get("versions", {})
    error = record.get("error") or {}
    row = {
        "run_id": record["run_id"], "status": record["status"],
        "source": source_label(spec), "strategy": spec["strategy"]["id"], "target": spec["target"]["id"],
        "seed": spec["seed"], "baseline": bool(spec.get("baseline")), "variant": variant_of(spec),
        "source_plugin": spec["source"]["plugin"], "source_version": spec["source"]["version"],
        "strategy_plugin": spec["strategy"]["plugin"], "strategy_version": spec["strategy"]["version"],
        "target_plugin": spec["target"]["plugin"], "target_version": spec["target"]["version"],
        "init": spec.get("init"), "content_hash": spec["target"].get("content_hash"),
        "baseline_run_id": spec.get("baseline_run_id"),
    }
    row.update({key: record["metrics"].get(key) for key in METRIC_KEYS})
    row.update({
        "tlbench_version": versions.get("tlbench"), "torch_version": versions.get("torch"),
        "timm_version": versions.get("timm"), "transformers_version": versions.get("transformers"),
        "device": prov.get("device"), "device_name": prov.get("device_name"), "host": prov.get("host"),
        "git_revision": prov.get("git_revision"), "deterministic": prov.get("deterministic"),
        "started_at": record.get("started_at"), "finished_at": record.get("finished_at"),
        "attempt": record.get("attempt"), "error_type": error.get("type"),
        "error_message": error.get("message"),
    })
    for part in ("source", "target", "strategy"):
        row.update(_flat(part, spec[part].get("params", {})))
    return row


def records_frame(records: list[dict]) -> pd.DataFrame:
    """The long table of runs, in a stable order."""
    rows = [record_row(record) for record in records]
    frame = pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS + list(METRIC_KEYS) + PROVENANCE_COLUMNS)
    if frame.empty:
        return frame
    param_cols = sorted(c for c in frame.columns if c.startswith("p_"))
    ordered = BASE_COLUMNS + list(METRIC_KEYS) + PROVENANCE_COLUMNS + param_cols
    frame = frame[ordered]
    return frame.sort_values(["target", "baseline", "source", "strategy", "seed", "run_id"],
                             ascending=[True, False, True, True, True, True], kind="stable").reset_index(drop=True)
