"""How leaderboard numbers read, the same in leaderboard.md and leaderboard.html.

Each view is a list of columns; a column turns a cell (or an across-targets row) into
its display text and its sort key. Columns are made per task type, so that headers name
its headline metric ("test r2 (mean ± std)") and hover titles say its direction. Every
signed number (vs best, NT) is already signed so that below zero is worse; the gap so
that positive means better on the training split. Markdown and HTML escape the text
their own way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .frame import COMPARED_PREFIX
from .tasks import Metric

MISSING = "missing"
NONE = "—"


def is_nan(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def num(value, digits: int = 3, signed: bool = False) -> str:
    if is_nan(value):
        return NONE
    return f"{float(value):+.{digits}f}" if signed else f"{float(value):.{digits}f}"


def interval(low, high, digits: int = 3, signed: bool = False) -> str:
    if is_nan(low) or is_nan(high):
        return NONE
    return f"[{num(low, digits, signed)}, {num(high, digits, signed)}]"


def _with_interval(mean, low, high, n) -> str:
    """A signed mean and its interval; with fewer than two paired seeds there is none."""
    if is_nan(low) or is_nan(high):
        return f"{num(mean, signed=True)} ({int(n)} seed{'s' if n != 1 else ''}, no interval)"
    return f"{num(mean, signed=True)} {interval(low, high, signed=True)}"


def truthy(row, name: str) -> bool:
    value = row.get(name)
    return bool(value) and not is_nan(value)


def label(row) -> str:
    """Strategy plus the note that tells two look-alike entries apart, the selection rule
    where it is not the target's (see `aggregate`), and 'upper bound' where the runs were
    given labels their roles withhold."""
    note = row.get("variant_note") or ""
    parts = [UPPER_BOUND] if truthy(row, "upper_bound") else []  # first: a figure may shorten the label
    parts += [note] if note else []
    rule = row.get("selection") or ""
    if truthy(row, "selection_shown") and rule and f"selection {rule}" not in note:
        parts.append(f"selection {rule}")
    return f"{row['strategy']} [{', '.join(parts)}]" if parts else str(row["strategy"])


UPPER_BOUND = "upper bound"


def compared_plugins(cells) -> list[str]:
    """The plugins some of `cells` are paired with (their ``nt_vs_<plugin>`` intervals)."""
    suffix = "_mean"
    return sorted(column[len(COMPARED_PREFIX):-len(suffix)] for column in cells.columns
                  if column.startswith(COMPARED_PREFIX) and column.endswith(suffix)
                  and cells[column].notna().any())


def versus(plugin: str):
    """A cell's difference to the runs of `plugin` it is paired with, with its interval,
    flagged only when the interval lies below 0."""
    name = f"{COMPARED_PREFIX}{plugin}"

    def text(cell) -> str:
        if cell["baseline"] or is_nan(cell.get(f"{name}_mean")):
            return NONE
        shown = _with_interval(cell[f"{name}_mean"], cell[f"{name}_low"], cell[f"{name}_high"],
                               cell[f"{name}_seeds"])
        if cell[f"{name}_worse"]:
            shown += f" worse than {plugin}"
        elif cell[f"{name}_better"]:
            shown += f" better than {plugin}"
        return shown

    return text


def versus_flag(plugin: str):
    name = f"{COMPARED_PREFIX}{plugin}"
    return lambda cell: ("negative" if truthy(cell, f"{name}_worse")
                         else "helps" if truthy(cell, f"{name}_better") else "")


def headline(cell) -> str:
    """The cell's mean test headline ± its standard deviation over seeds."""
    if cell["n_seeds"] == 0:
        return MISSING
    std = "" if is_nan(cell["test_std"]) else f" ± {num(cell['test_std'])}"
    return num(cell["test_mean"]) + std


def seeds(cell) -> str:
    text = str(int(cell["n_seeds"]))
    if cell["n_failed"]:
        text += f" ({cell['failures']})"
    elif cell["n_runs"] == 0:
        text += " (no runs)"
    return text


def negative_transfer(cell) -> str:
    if cell["baseline"] or is_nan(cell["nt_mean"]):
        return NONE
    text = _with_interval(cell["nt_mean"], cell["nt_low"], cell["nt_high"], cell["nt_seeds"])
    if cell["negative_transfer"]:
        text += " negative transfer"
    elif cell["positive_transfer"]:
        text += " helps"
    return text


def versus_best(cell) -> str:
    verdict = cell["vs_best"]
    if verdict in ("best", MISSING):
        return verdict
    if verdict == UPPER_BOUND:
        return "not ranked (upper bound)"
    delta = _with_interval(cell["best_delta_mean"], cell["best_delta_low"], cell["best_delta_high"],
                           cell["best_delta_seeds"])
    return f"{delta} {'below best' if verdict == 'below best' else '≈ best'}"


def sort_key(value):
    """Numbers sort as numbers; missing values sort last whatever the direction."""
    return None if is_nan(value) else float(value)


@dataclass(frozen=True)
class Column:
    header: str
    text: Callable[[dict], str]
    key: Callable[[dict], object]
    numeric: bool = True
    title: str = ""
    """A hover explanation of the header."""
    flag: Callable[[dict], str] | None = None
    """The class a cell's value earns ('negative', 'helps' or ''), where the column flags."""


def _text(name: str) -> Callable[[dict], str]:
    return lambda row: str(row[name])


def _nt_flag(cell) -> str:
    return "negative" if cell["negative_transfer"] else "helps" if cell["positive_transfer"] else ""


def cell_columns(metric: Metric, compared: list[str] = ()) -> list[Column]:
    """A target's table: headers name the metric, titles say its direction; one "NT vs P"
    column per plugin P the target's runs are paired with (`compared`)."""
    name = metric.name
    flipped = "" if metric.higher_is_better else ", sign flipped so that below 0 is worse"
    versus_columns = [
        Column(f"NT vs {plugin} [95% CI]", versus(plugin),
               lambda c, p=plugin: sort_key(c[f"{COMPARED_PREFIX}{p}_mean"]),
               title=f"test {name} minus that of the {plugin} run of the same source, group of targets and seed"
                     f"{flipped}; flagged 'worse than {plugin}' (negative transfer of the adaptation) when the "
                     "paired interval lies below 0", flag=versus_flag(plugin))
        for plugin in compared]
    return [
        Column("rank", lambda c: NONE if is_nan(c["rank_in_target"]) else f"{c['rank_in_target']:.0f}",
               lambda c: sort_key(c["rank_in_target"]),
               title=f"rank by mean test {name} within this target ({metric.direction})"),
        Column("source", _text("source"), _text("source"), numeric=False),
        Column("strategy", label, label, numeric=False),
        Column(f"test {metric.short} (mean ± std)", headline, lambda c: sort_key(c["test_mean"]),
               title=f"test {name} over seeds ({metric.direction})"),
        Column("95% CI", lambda c: interval(c["test_low"], c["test_high"]), lambda c: sort_key(c["test_low"]),
               title="Student-t interval for the mean over seeds"),
        Column("vs best [95% CI]", versus_best, lambda c: sort_key(c["best_delta_mean"]),
               title="paired per-seed difference to the best cell, below 0 when worse; ≈ best when the "
                     "interval reaches 0"),
        Column("seeds", seeds, lambda c: sort_key(c["n_seeds"]), title="seeds with a result (failures)"),
        Column(f"train {metric.short}", lambda c: num(c["train_mean"]), lambda c: sort_key(c["train_mean"])),
        Column(metric.gap_header, lambda c: num(c["gap_mean"], signed=True), lambda c: sort_key(c["gap_mean"]),
               title=f"overfitting gap: {metric.gap_formula}; positive: better on the training split"),
        Column("NT vs scratch [95% CI]", negative_transfer, lambda c: sort_key(c["nt_mean"]),
               title=f"test {name} minus the same-seed from-scratch baseline"
                     + ("" if metric.higher_is_better else ", sign flipped so that below 0 is worse")
                     + "; flagged when the paired interval lies below 0", flag=_nt_flag),
        *versus_columns,
        Column("wall s", lambda c: num(c["wall_mean"], 1), lambda c: sort_key(c["wall_mean"])),
        Column("peak MB", lambda c: num(c["peak_memory_mean"], 0), lambda c: sort_key(c["peak_memory_mean"])),
    ]


def overall_columns(metric: Metric) -> list[Column]:
    """A task type's across-targets table."""
    return [
        Column("source", _text("source"), _text("source"), numeric=False),
        Column("strategy", label, label, numeric=False),
        Column("coverage", _text("coverage"), lambda r: sort_key(r["n_targets"]),
               title="targets with at least one successful run"),
        Column(f"mean {metric.short}", lambda r: num(r["mean_headline"]), lambda r: sort_key(r["mean_headline"]),
               title=f"mean test {metric.name} over the targets every entry has results on"),
        Column("mean rank", lambda r: num(r["mean_rank"], 2), lambda r: sort_key(r["mean_rank"]),
               title="Borda: mean within-target rank over the targets every entry has results on"),
        Column("best or ≈ best", lambda r: f"{r['best_or_tied']}/{r['compared_on']}",
               lambda r: sort_key(r["best_or_tied"]),
               title="targets where the entry is best or not separable from the best (paired 95% CI)"),
    ]


def domain_gap_columns(metric: Metric, cells) -> list[Column]:
    """A target's domain-gap table (its reference cells): the headline on the other
    role's target and on the scored one, and their difference over seeds."""
    first = cells.iloc[0]
    other, scored = _role_name(first, "other_target", "other_role"), _role_name(first, "scored_target", "scored")
    return [
        Column("source", _text("source"), _text("source"), numeric=False),
        Column("strategy", label, label, numeric=False),
        Column(f"test {metric.short} on {other}", lambda c: num(c["other_test_mean"]),
               lambda c: sort_key(c["other_test_mean"]), title=f"mean test {metric.name} over seeds"),
        Column(f"test {metric.short} on {scored}", lambda c: num(c["test_mean"]), lambda c: sort_key(c["test_mean"]),
               title=f"mean test {metric.name} over seeds: the scored domain"),
        Column("domain gap [95% CI]",
               lambda c: _with_interval(c["domain_gap_mean"], c["domain_gap_low"], c["domain_gap_high"],
                                        c["domain_gap_seeds"]),
               lambda c: sort_key(c["domain_gap_mean"]),
               title=f"test {metric.name} on {other} − on {scored}, per seed"
                     + ("" if metric.higher_is_better else ", sign flipped")
                     + "; positive: worse on the scored domain"),
        Column("seeds", lambda c: str(int(c["domain_gap_seeds"])), lambda c: sort_key(c["domain_gap_seeds"])),
    ]


def _role_name(row, target: str, role: str) -> str:
    """'<target id> (<role>)', or the role alone when the target is not named."""
    name = row.get(target)
    return f"{name} ({row.get(role)})" if isinstance(name, str) and name else str(row.get(role))
