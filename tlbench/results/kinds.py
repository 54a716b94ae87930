"""Run kinds: what sorts of runs a suite is made of, and everything that differs between them.

A run kind owns its identity (which registry kind its recipe comes from, and whether
its identity says so), its records (their kind, folder and checks), the function that
executes one of its specs inside a worker, and the function that turns its records into
report rows. Every layer asks the kind instead of branching on it, so a new sort of run
(a multi-task run) is one more entry here.

Kinds live in the lowest layer, beside the records they describe, so that planning,
running and reporting can all read them; the functions of the higher layers are named
by import path ("module:function") and resolved where they are used, which keeps
every layer's imports pointing down.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class RunKind:
    name: str
    """The record's `kind` and the spec's."""
    folder: str
    """Where a result directory keeps records of this kind."""
    recipe: str
    """The registry kind of what the spec runs ('strategy', 'estimator'), and its key in
    identities and records."""
    execute: str
    """'module:function' executing one spec in a worker: (worker, spec, context, env) ->
    (metrics, details)."""
    rows: str
    """'module:function' turning this kind's records into the report's table (for a
    multi-task kind: into one run-like record per member, which join the runs' table)."""
    headline: Callable[[dict], str | None]
    """The metric an ok record of this kind must carry (None: none is required)."""
    in_identity: bool = True
    """Whether the kind's name is part of run identities (not for 'run', whose ids
    predate kinds)."""
    scored_by_task: bool = False
    """Whether its records carry a task and the task's metrics on every split (a strategy
    trained and its predictions scored), rather than one score of their own."""
    withholds_test: bool = False
    """Whether its runs are given no test split at all (a search trial: scored on
    validation, so no test label, nor even a test example, can reach a selection)."""
    multitask: bool = False
    """Whether its records carry several tasks (``tasks``: role → task) and each one's
    metrics under its role (`tlbench.results.multitask`)."""

    def resolve(self, which: str) -> Callable[..., Any]:
        module, _, function = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), function)


def fit_headline(record: dict) -> str | None:
    from .records import task_of  # records describe their kinds' metrics; kinds come first

    return f"test_{task_of(record)['headline']}"


def trial_headline(record: dict) -> str | None:
    from .records import task_of

    return f"val_{task_of(record)['headline']}"


def multitask_headline(record: dict) -> str | None:
    tasks = record.get("tasks") if isinstance(record.get("tasks"), dict) else {}
    role = next(iter(tasks), None)
    return None if role is None else f"{role}/test_{tasks[role].get('headline')}"


def estimate_headline(record: dict) -> str | None:
    return None if (record.get("details") or {}).get("not_applicable") else "score"


RUN_KINDS: dict[str, RunKind] = {
    "run": RunKind("run", "runs", "strategy", "tlbench.run.fit:execute", "tlbench.report.frame:records_frame",
                   fit_headline, in_identity=False, scored_by_task=True),
    "trial": RunKind("trial", "trials", "strategy", "tlbench.run.fit:execute",
                     "tlbench.report.frame:records_frame", trial_headline, scored_by_task=True,
                     withholds_test=True),
    "multitask": RunKind("multitask", "multitask", "strategy", "tlbench.run.multitask:execute",
                         "tlbench.report.multitask:member_records", multitask_headline, multitask=True),
    "estimate": RunKind("estimate", "estimates", "estimator", "tlbench.run.estimate:execute",
                        "tlbench.report.estimates:estimates_frame", estimate_headline),
}
"""Every run kind by name."""


def run_kind(name: str) -> RunKind:
    try:
        return RUN_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown run kind {name!r}; known: {', '.join(RUN_KINDS)}") from None
