"""Progress of a suite on the terminal: a bar with an ETA, and one line per finished run."""

from __future__ import annotations

import sys
from typing import Callable

from tqdm import tqdm

from .plan.matrix import RunSpec
from .results.records import task_of


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def run_line(record: dict, label: str) -> str:
    """One line about a finished run: status, label, the test headline, time, reason."""
    metrics = record["metrics"]
    if record.get("kind") == "estimate":
        line = f"{record['status']:<11} {label}  score {_fmt(metrics.get('score'))}"
    else:
        headline = task_of(record)["headline"]
        line = f"{record['status']:<11} {label}  test {headline} {_fmt(metrics.get(f'test_{headline}'))}"
    if metrics.get("negative_transfer") is not None:
        line += f"  NT {metrics['negative_transfer']:+.3f}"
    if metrics.get("wall_seconds") is not None:
        line += f"  ({metrics['wall_seconds']:.1f} s)"
    if record.get("error"):
        line += f"  — {record['error']['message']}"
    return line


class Progress:
    def __init__(self, total: int, log: Callable[[str], None]):
        self.log = log
        self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True,
                        disable=not sys.stderr.isatty(), leave=False,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        self.done = 0
        self.total = total

    def event(self, spec: RunSpec, kind: str, payload: dict) -> None:
        values = [(key, value) for key, value in payload.items() if key.startswith("val_") and value is not None]
        if kind == "eval" and values:
            key, value = values[0]
            self.bar.set_postfix_str(f"{spec.recipe.id} epoch {payload.get('epoch')} "
                                     f"{key.replace('_', ' ', 1)} {value:.3f}", refresh=True)

    def finished(self, spec: RunSpec, record: dict) -> None:
        self.done += 1
        line = f"[{self.done:>{len(str(self.total))}}/{self.total}] " + run_line(record, spec.label())
        if self.bar.disable:
            self.log(line)
        else:
            self.bar.write(line, file=sys.stderr)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
