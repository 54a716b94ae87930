"""Where a report's numbers came from: machines, devices, software versions and dates.

A published leaderboard names every machine that contributed records, the devices they
ran on, the tlbench and library versions, and when the runs happened, so a reader can
tell a merged table from a single-machine one.
"""

from __future__ import annotations

import pandas as pd

from .frame import LIBRARIES


def _distinct(series: pd.Series) -> list[str]:
    return sorted(str(v) for v in series.dropna().unique())


def _device(row) -> str:
    name = row["device_name"] if isinstance(row["device_name"], str) else "?"
    return f"{row['device'] or '?'} ({name})"


def machines(frame: pd.DataFrame) -> list[dict]:
    """One entry per contributing host, busiest first."""
    if frame.empty:
        return []
    frame = frame.assign(host=frame["host"].fillna("unknown host"),
                         device_label=frame.apply(_device, axis=1) if len(frame) else [])
    rows = []
    for host, runs in frame.groupby("host", sort=True):
        rows.append({
            "host": str(host), "runs": len(runs), "ok": int((runs["status"] == "ok").sum()),
            "devices": _distinct(runs["device_label"]), "tlbench": _distinct(runs["tlbench_version"]),
            "git_revisions": _distinct(runs["git_revision"]),
            "first": _first(runs["started_at"]), "last": _last(runs["finished_at"]),
        })
    return sorted(rows, key=lambda r: (-r["runs"], r["host"]))


def _first(series: pd.Series) -> str | None:
    values = _distinct(series)
    return values[0] if values else None


def _last(series: pd.Series) -> str | None:
    values = _distinct(series)
    return values[-1] if values else None


def versions(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """library → version → number of runs that used it."""
    found = {}
    for name in LIBRARIES:
        counts = frame[f"{name}_version"].dropna().astype(str).value_counts().sort_index()
        if len(counts):
            found[name] = {version: int(n) for version, n in counts.items()}
    return found


def provenance_summary(frame: pd.DataFrame) -> dict:
    devices = frame.apply(_device, axis=1).value_counts().sort_index() if len(frame) else pd.Series(dtype=int)
    return {
        "machines": machines(frame),
        "versions": versions(frame),
        "devices": {device: int(n) for device, n in devices.items()},
        "first_started": _first(frame["started_at"]) if len(frame) else None,
        "last_finished": _last(frame["finished_at"]) if len(frame) else None,
    }
