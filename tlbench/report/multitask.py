"""Multi-task runs in reports: a row per task, and a section comparing them with single-task learning.

A multi-task record holds every member's metrics (`tlbench.results.multitask`). For the
leaderboard it becomes one run-like record per member (`member_records`): the member's
target, task and metrics, the group's entry, its from-scratch baseline and its
single-task run as the paired comparison (``nt_vs_<its plugin>``). So a leaderboard keeps one row
per (source, target, strategy), and a multi-task method sits next to the single-task
and from-scratch rows of each of its tasks.

The multi-task section (`multitask_cells`) gives, per group, source and method, for each
task: the headline, Δ_i over the single-task run with its 95% interval over seeds (Δ_i
is a same-seed comparison, so the interval is a paired one), flagged as negative
transfer between tasks when its mean is below 0; and for the method, Δm with its
interval over seeds and the number of tasks hurt. A bar plot shows each method's Δ_i.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from ..hashing import config_hash
from ..results.multitask import member_metrics
from .stats import t_interval

MEMBER_FACTS = ("task_group", "group_identity", "sampling", "single_task", "multitask_run_id", "task_delta", "delta_m",
                "tasks_hurt")
"""Columns a member row carries about its multi-task run (None for other rows)."""


def member_records(records: list[dict]) -> list[dict]:
    """One run-like record per member of each multi-task record (see the module docstring)."""
    out = []
    for record in records:
        tasks = record.get("tasks") if isinstance(record.get("tasks"), dict) else {}
        spec = record.get("spec") or {}
        members = {m.get("role"): m for m in spec.get("members") or [] if isinstance(m, dict)}
        identity = spec.get("identity") if isinstance(spec.get("identity"), dict) else {}
        targets = spec.get("targets") if isinstance(spec.get("targets"), dict) else {}
        for role, task in tasks.items():
            member = members.get(role, {})
            own = {key: value for key, value in identity.items() if key not in ("targets", "scored")}
            own["target"] = (identity.get("targets") or {}).get(role)
            row_spec = {**{k: v for k, v in spec.items() if k not in ("targets", "scored", "members", "paired")},
                        "target": targets.get(role) or {"id": role}, "identity": own, "group": None,
                        "baseline_run_id": member.get("baseline_run_id")}
            single_task = (identity.get("single_task") or {}).get("plugin")
            if member.get("single_task_run_id") and single_task:
                row_spec["paired"] = {single_task: member["single_task_run_id"]}
            metrics = member_metrics(record.get("metrics") or {}, role)
            metrics.pop("vs_single_task", None)  # the report recomputes it as nt_vs_<plugin> from the paired record
            for key in ("wall_seconds", "peak_memory_mb", "trainable_params", "total_params"):
                metrics[key] = (record.get("metrics") or {}).get(key)
            details = copy.deepcopy(record.get("details") or {})
            out.append({**{k: v for k, v in record.items() if k not in ("tasks", "metrics", "spec", "details")},
                        "kind": "run", "run_id": f"{record.get('run_id')}/{role}", "spec": row_spec, "task": task,
                        "metrics": metrics, "details": details,
                        "member": {"task_group": spec.get("group"), "group_identity": group_identity(identity),
                                   "sampling": spec.get("sampling"), "single_task": single_task,
                                   "multitask_run_id": record.get("run_id"), "task_delta": metrics.get("delta"),
                                   "delta_m": (record.get("metrics") or {}).get("delta_m"),
                                   "tasks_hurt": (record.get("metrics") or {}).get("tasks_hurt")}})
    return out


def group_identity(identity: dict) -> str:
    """What a group is, without its data: its members' identities by role and its
    sampling (two suites' groups of one name are kept apart unless these are equal)."""
    targets = identity.get("targets") if isinstance(identity.get("targets"), dict) else {}
    members = {role: {k: v for k, v in (part or {}).items() if k != "content_hash"} for role, part in targets.items()}
    return config_hash({"targets": members, "sampling": identity.get("sampling")}, 8)


def member_facts(record: dict) -> dict:
    """The `MEMBER_FACTS` of a (member) record."""
    member = record.get("member") if isinstance(record.get("member"), dict) else {}
    return {key: member.get(key) for key in MEMBER_FACTS}


def multitask_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (group, source, method, task): headline, Δ_i and Δm with intervals over seeds."""
    if "task_group" not in frame or frame["task_group"].isna().all():
        return pd.DataFrame()
    members = frame[frame["task_group"].notna() & (frame["status"] == "ok")]
    rows = []
    keys = ["task_group", "source", "strategy", "group_identity", "entry"]  # look-alikes kept apart, never pooled
    for (group, source, strategy, *_), method in members.groupby(keys, sort=True):
        by_run = method.drop_duplicates("multitask_run_id")
        delta_m = t_interval(by_run["delta_m"])
        deltas = {}
        for target, runs in method.groupby("target_label", sort=False):
            deltas[target] = t_interval(runs["task_delta"])
        hurt = sum(1 for interval in deltas.values() if np.isfinite(interval.mean) and interval.mean < 0)
        for target, runs in method.groupby("target_label", sort=False):
            head, delta = t_interval(runs["headline_test"]), deltas[target]
            column = f"nt_vs_{runs['single_task'].iloc[0]}"
            stl = t_interval(runs[column]) if column in runs else t_interval([])
            note = runs["variant_note"].iloc[0]
            rows.append({"task_group": group, "sampling": runs["sampling"].iloc[0], "source": source,
                         "strategy": strategy, "note": f" [{note}]" if note else "", "target": target,
                         "group_identity": runs["group_identity"].iloc[0], "task": runs["task"].iloc[0],
                         "metric": runs["metric"].iloc[0], "seeds": head.n, "mean": head.mean, "low": head.low,
                         "high": head.high, "delta": delta.mean, "delta_low": delta.low, "delta_high": delta.high,
                         "vs_stl": stl.mean, "vs_stl_low": stl.low, "vs_stl_high": stl.high,
                         "hurt": bool(np.isfinite(delta.mean) and delta.mean < 0),
                         "significant": delta.below_zero,
                         "delta_m": delta_m.mean, "delta_m_low": delta_m.low, "delta_m_high": delta_m.high,
                         "delta_m_seeds": delta_m.n, "tasks_hurt": hurt, "tasks": len(deltas)})
    return pd.DataFrame(rows)


def _pct(value, signed: bool = True) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def _with_interval(mean, low, high, pct: bool = True) -> str:
    show = _pct if pct else (lambda v: "—" if v is None or not np.isfinite(v) else f"{v:+.3f}")
    if low is None or not np.isfinite(low):
        return show(mean)
    return f"{show(mean)} [{show(low)}, {show(high)}]"


INTRO = ("Each multi-task method trains one backbone with a head per task of a group. Δ is its relative "
         "improvement over the single-task run of the same recipe, source and seed, averaged over the task's "
         "metrics (signed so that positive is better); Δm is the mean of the tasks' Δ (Maninis et al. 2019, "
         "Vandenhende et al. 2021). Intervals are 95% Student-t over seeds; Δ is a same-seed difference, so its "
         "interval is a paired one. A task whose mean Δ is below 0 is hurt by sharing: negative transfer "
         "between tasks (⚠; ✗ where the whole interval is below 0).")


def _method_rows(cells: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, method in cells.groupby(["task_group", "source", "strategy", "note", "group_identity"], sort=True):
        first = method.iloc[0]
        rows.append([f"{first['task_group']} ({first['sampling']})", first["source"], first["strategy"] + first["note"],
                     _with_interval(first["delta_m"], first["delta_m_low"], first["delta_m_high"]),
                     f"{first['tasks_hurt']} of {first['tasks']}", str(first["delta_m_seeds"])])
    return rows


def _task_rows(cells: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, cell in cells.iterrows():
        flag = " ✗" if cell["significant"] else " ⚠" if cell["hurt"] else ""
        rows.append([f"{cell['task_group']}", cell["source"], cell["strategy"] + cell["note"],
                     f"{cell['target']} ({cell['task']})",
                     f"{cell['metric']} {cell['mean']:.3f}" if np.isfinite(cell["mean"]) else "—",
                     _with_interval(cell["delta"], cell["delta_low"], cell["delta_high"]) + flag,
                     _with_interval(cell["vs_stl"], cell["vs_stl_low"], cell["vs_stl_high"], pct=False)])
    return rows


METHOD_HEADERS = ["group (sampling)", "source", "method", "Δm [95% CI]", "tasks hurt", "seeds"]
TASK_HEADERS = ["group", "source", "method", "task", "test headline", "Δ vs STL [95% CI]",
                "headline − STL [paired 95% CI]"]


def multitask_markdown(cells: pd.DataFrame) -> str:
    from tabulate import tabulate

    def table(rows, headers):
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)

    return "\n".join(["## Multi-task learning", "", INTRO, "", table(_method_rows(cells), METHOD_HEADERS), "",
                      table(_task_rows(cells), TASK_HEADERS), ""])


def multitask_html(cells: pd.DataFrame, figures: dict[str, tuple[bytes, bytes]]) -> str:
    from .html import esc, figure

    def table(rows, headers):
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f'<table class="multitask"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    parts = ['<section id="multitask"><h2>Multi-task learning</h2>', f"<p>{esc(INTRO)}</p>",
             table(_method_rows(cells), METHOD_HEADERS), table(_task_rows(cells), TASK_HEADERS)]
    for figure_id, (png, _) in sorted(figures.items()):
        caption = "Per-task Δ over single-task learning, by method (95% intervals over seeds)"
        parts.append(figure(png, caption, caption, figure_id))
    return "".join(parts) + "</section>"


def multitask_figures(cells: pd.DataFrame) -> dict[str, tuple[bytes, bytes]]:
    """Per group and source: bars of each method's Δ per task, with 95% intervals."""
    from .comparison_plots import _svg
    from .plots import _figure, _png, plot_label

    figures = {}
    cells = cells.assign(method=cells["strategy"] + cells["note"])
    for i, ((group, source, _), part) in enumerate(cells.groupby(["task_group", "source", "group_identity"], sort=True)):
        tasks = list(dict.fromkeys(part["target"]))
        methods = list(dict.fromkeys(part["method"]))
        figure = _figure(max(5.0, 1.2 * len(tasks) * max(1, len(methods)) / 2 + 2), 3.8)
        ax = figure.add_subplot()
        width = 0.8 / max(1, len(methods))
        for j, method in enumerate(methods):
            rows = part[part["method"] == method].set_index("target").reindex(tasks)
            x = np.arange(len(tasks)) + (j - (len(methods) - 1) / 2) * width
            means = 100 * rows["delta"].to_numpy(dtype=float)
            low = 100 * rows["delta_low"].to_numpy(dtype=float)
            high = 100 * rows["delta_high"].to_numpy(dtype=float)
            error = np.where(np.isfinite(low), np.vstack([means - low, high - means]), 0.0)
            ax.bar(x, np.nan_to_num(means), width, yerr=error, capsize=2, label=plot_label(method))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(tasks)), [plot_label(t) for t in tasks], fontsize=8)
        ax.set_ylabel("Δ vs single-task (%)")
        ax.set_title(f"{plot_label(group)} from {plot_label(source)}: Δ per task (below 0: hurt by sharing)",
                     fontsize=9)
        ax.legend(fontsize=7)
        figures[f"multitask-{i}"] = (_png(figure), _svg(figure))
    return figures
