"""The machine-readable outputs: results.csv, results.parquet (one row per run) and
summary.json (cells, the view across targets, provenance and notes).

Every number is in its target's headline metric, so every cell and across-targets row
in summary.json carries `task`, `metric` and `higher_is_better` (cells also the metric's
range and `sign`), and `meta.task_types` lists the task types the report compares; the
run tables name each metric by its own column (`test_accuracy`, `test_r2`...).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd

from ..results.store import jsonable, write_bytes_atomic


def publish(path: Path, data: bytes) -> Path:
    """Write a report file atomically, readable as the user's umask allows: report files
    are meant to be shared and served, unlike the private temporary file they start as."""
    write_bytes_atomic(path, data)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a parameter column whose values differ in
    type between plugins (a number here, a string there) is written as text."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v))
                                              else str(v))
    return frame


def write_tables(frame: pd.DataFrame, out: Path) -> list[Path]:
    csv_path, parquet_path = out / "results.csv", out / "results.parquet"
    publish(csv_path, frame.to_csv(index=False).encode("utf-8"))
    buffer = io.BytesIO()
    parquet_ready(frame).to_parquet(buffer, index=False)
    publish(parquet_path, buffer.getvalue())
    return [csv_path, parquet_path]


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records")) if len(table) else []


def write_summary(out: Path, meta: dict, cells: pd.DataFrame, overall: pd.DataFrame, conflicts: list,
                  estimates: dict[str, pd.DataFrame] | None = None, across: list[dict] = (),
                  extra: dict | None = None) -> Path:
    """summary.json; `extra`: further parts (tuned cells, sweeps), already plain JSON."""
    summary = {
        "meta": meta, "cells": _records(cells), "overall": _records(overall), "across_targets": list(across),
        "conflicts": [{"target": c.target, "target_identity": c.target_identity, "seed": c.seed,
                       "content_hashes": c.hashes} for c in conflicts],
    }
    if estimates is not None:
        summary["estimates"] = {name: _records(table) for name, table in estimates.items()}
    summary.update(extra or {})
    text = json.dumps(jsonable(summary), indent=1, sort_keys=True, allow_nan=False) + "\n"
    return publish(out / "summary.json", text.encode("utf-8"))
