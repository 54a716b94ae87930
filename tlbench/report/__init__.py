"""Reports: from records alone to leaderboard.md, results.csv and summary.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..store import RecordStore, StoreProblem, write_bytes_atomic, write_json_atomic


@dataclass
class Report:
    out: Path
    markdown: str
    n_records: int
    problems: list[StoreProblem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def runs_dir(directory: Path) -> Path:
    """A result directory holds its records under runs/; accept either."""
    directory = Path(directory)
    return directory / "runs" if (directory / "runs").is_dir() else directory


def collect(dirs: list[Path]) -> tuple[list[dict], list[StoreProblem]]:
    """Valid records from result directories, one per run id (an ok one preferred)."""
    chosen: dict[str, dict] = {}
    problems: list[StoreProblem] = []
    for directory in dirs:
        store = RecordStore(runs_dir(directory))
        for run_id, record in store.load_all().items():
            previous = chosen.get(run_id)
            if previous is None or (previous["status"] != "ok" and record["status"] == "ok"):
                chosen[run_id] = record
        problems += store.problems
    return list(chosen.values()), problems


def report_meta(records: list[dict], frame, title: str, notes: list[str]) -> dict:
    import tlbench

    devices = sorted({f"{r.get('provenance', {}).get('device', '?')} "
                      f"({r.get('provenance', {}).get('device_name', '?')})" for r in records})
    seeds = sorted({r["spec"]["seed"] for r in records})
    return {
        "title": title, "tlbench": tlbench.__version__,
        "runs_ok": int((frame["status"] == "ok").sum()) if len(frame) else 0,
        "runs_failed": int((frame["status"] != "ok").sum()) if len(frame) else 0,
        "seeds": ", ".join(str(s) for s in seeds) or "—",
        "devices": "; ".join(devices) or "—",
        "hosts": sorted({r.get("provenance", {}).get("host", "?") for r in records}),
        "notes": notes,
    }


def build_report(dirs: list[Path], out: Path, title: str | None = None) -> Report:
    """Read records from `dirs`, write the leaderboard files into `out`."""
    from .aggregate import cell_table, overall_table
    from .frame import records_frame
    from .markdown import leaderboard_markdown

    out = Path(out)
    records, problems = collect([Path(d) for d in dirs])
    frame = records_frame(records)
    cells = cell_table(frame)
    overall = overall_table(cells[~cells["baseline"]] if len(cells) else cells)
    notes = [str(p) for p in problems]
    meta = report_meta(records, frame, title or ", ".join(Path(d).name for d in dirs), notes)
    markdown = leaderboard_markdown(cells, overall, meta) if len(cells) else \
        f"# tlbench leaderboard: {meta['title']}\n\nNo records yet.\n"
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "leaderboard.md", out / "results.csv", out / "summary.json"]
    write_bytes_atomic(files[0], markdown.encode("utf-8"))
    write_bytes_atomic(files[1], frame.to_csv(index=False).encode("utf-8"))
    summary = {"meta": meta, "cells": json.loads(cells.to_json(orient="records")),
               "overall": json.loads(overall.to_json(orient="records"))}
    write_json_atomic(files[2], summary)
    return Report(out=out, markdown=markdown, n_records=len(records), problems=problems, files=files)
