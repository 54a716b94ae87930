"""Progress of a suite on the terminal: a header saying how many runs on how many
workers and why, a line as each source's preparation starts and ends, a bar with an
ETA, and one line per finished run.

Preparations (pretraining a source on the spot, converting weights) can take minutes
before the first run; their measured times are kept in ``<cache>/preparation-times.json``
(`PreparationTimes`), so the next preparation of the same source says how long it took
last time.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from .hashing import config_hash
from .plan.matrix import RunSpec
from .results.records import task_of
from .results.store import write_json_atomic


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def run_line(record: dict, label: str) -> str:
    """One line about a finished run: status, label, the test headline, time, reason."""
    metrics = record["metrics"]
    if record.get("kind") == "estimate":
        line = f"{record['status']:<11} {label}  score {_fmt(metrics.get('score'))}"
    elif isinstance(record.get("tasks"), dict):  # a multi-task run: each member's headline, then Δm
        parts = []
        for role, task in record["tasks"].items():
            headline = task.get("headline")
            parts.append(f"{role} {headline} {_fmt(metrics.get(f'{role}/test_{headline}'))}")
        line = f"{record['status']:<11} {label}  test " + ", ".join(parts)
        if metrics.get("delta_m") is not None:
            line += f"  Δm {100 * metrics['delta_m']:+.1f}%"
    else:  # a search trial is scored on validation alone
        split = "val" if record.get("kind") == "trial" else "test"
        headline = task_of(record)["headline"]
        line = f"{record['status']:<11} {label}  {split} {headline} {_fmt(metrics.get(f'{split}_{headline}'))}"
    if metrics.get("negative_transfer") is not None:
        line += f"  NT {metrics['negative_transfer']:+.3f}"
    if metrics.get("wall_seconds") is not None:
        line += f"  ({metrics['wall_seconds']:.1f} s)"
    if record.get("error"):
        line += f"  — {record['error']['message']}"
    return line


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class PreparationTimes:
    """How long each source's preparation took when last measured, in a small JSON file
    in the cache directory, keyed by what the preparation depends on: the source's
    plugin, version and parameters, and the kind of device (a pretraining takes other
    times on a GPU). Only preparations that did work are kept (one that found its
    result in the cache takes no time and says nothing about the next real one). The
    file is a hint: unreadable, missing or raced by another suite, it gives no estimate."""

    FILE = "preparation-times.json"
    WORTH_KEEPING_S = 1.0

    def __init__(self, cache_dir: Path, device: str):
        self.path = Path(cache_dir) / self.FILE
        self.device_kind = device.partition(":")[0]

    def key(self, source: dict) -> str:
        return config_hash([source["plugin"], source.get("version"), source["params"], self.device_kind])

    def _load(self) -> dict:
        import json

        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def estimate(self, source: dict) -> float | None:
        seconds = (self._load().get(self.key(source)) or {}).get("seconds")
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def measured(self, source: dict, seconds: float) -> None:
        if seconds < self.WORTH_KEEPING_S:
            return
        times = self._load()
        times[self.key(source)] = {"source": source["id"], "plugin": source["plugin"], "seconds": round(seconds, 1),
                                   "device": self.device_kind, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            write_json_atomic(self.path, times)
        except OSError:  # a read-only cache still runs
            pass


class Progress:
    """What the terminal shows while runs execute: the header, then a line as things
    happen, and the bar on a terminal."""

    QUIET_S = 1.0
    """How long a preparation with no measured time to announce may take before it is
    told: a source with nothing to prepare prints nothing."""

    def __init__(self, total: int, log: Callable[[str], None], header: str | None = None,
                 preparation_times: PreparationTimes | None = None):
        self.log = log
        self.times = preparation_times
        self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True,
                        disable=not sys.stderr.isatty(), leave=False,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        self.done = 0
        self.total = total
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._preparing: set[str] = set()
        """Sources whose preparation started and has not ended."""
        self._told: set[str] = set()
        """Sources whose start was told (their end will be too)."""
        if header:
            self._write(header)

    def _after_quiet(self, action, *args) -> threading.Timer:
        timer = threading.Timer(self.QUIET_S, action, args)
        timer.daemon = True
        timer.start()
        return timer

    def _write(self, line: str) -> None:
        if self.bar.disable:
            self.log(line)
        else:
            self.bar.write(line, file=sys.stderr)

    def preparation(self, source: dict, seconds: float | None) -> None:
        """A source's preparation started (`seconds` None) or ended after `seconds`.

        Its start is told at once when it took a while last time, else after `QUIET_S`
        if it is still going; its end only when its start was told: a source with
        nothing to prepare (or already prepared) prints nothing."""
        source_id = source["id"] + (f" for seed {source['seed']}" if source.get("seed") is not None else "")
        if seconds is None:
            estimate = self.times.estimate(source) if self.times else None
            line = f"tlbench: preparing source {source_id} ({source['plugin']})" + (
                f"; it took {_duration(estimate)} last time" if estimate is not None else "")
            with self._lock:
                self._preparing.add(source_id)
            if estimate is not None:
                self._tell_start(source_id, line)
            else:
                self._timers.append(self._after_quiet(self._tell_start, source_id, line))
            return
        if self.times:
            self.times.measured(source, seconds)
        with self._lock:
            self._preparing.discard(source_id)
            if source_id in self._told:
                self._write(f"tlbench: source {source_id} prepared in {_duration(seconds)}")

    def _tell_start(self, source_id: str, line: str) -> None:
        with self._lock:
            if source_id in self._preparing:  # else it ended within the quiet time: nothing to tell
                self._told.add(source_id)
                self._write(line)

    def event(self, spec: RunSpec, kind: str, payload: dict) -> None:
        values = [(key, value) for key, value in payload.items() if key.startswith("val_") and value is not None]
        if kind == "eval" and values:
            key, value = values[0]
            self.bar.set_postfix_str(f"{spec.recipe.id} epoch {payload.get('epoch')} "
                                     f"{key.replace('_', ' ', 1)} {value:.3f}", refresh=True)

    def finished(self, spec: RunSpec, record: dict) -> None:
        self.done += 1
        self._write(f"[{self.done:>{len(str(self.total))}}/{self.total}] " + run_line(record, spec.label()))
        if not self.bar.disable:
            self.bar.update(1)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.bar.close()
