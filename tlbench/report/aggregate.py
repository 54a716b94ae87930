"""Leaderboard statistics: cells over seeds, and the view across targets.

A cell is one entry (source × strategy, see `frame`) on one target, scored by the
target's headline metric (accuracy, mAP, R²...) in that metric's direction. Every entry
seen on a target of a task type (and headline) gets a cell on every target of that task
type: one without a successful run is a *missing* cell, shown as such. The headline, gap
and cost are summarised over the seeds that succeeded, with 95% Student-t intervals
(`stats`), cut to the range the quantity can take (an accuracy interval to [0, 1], an
accuracy difference to [-1, 1], an R² interval to at most 1).

Which differences are real:

- negative transfer (NT, run − same-seed from-scratch baseline, signed so that NT < 0
  is worse) is flagged only when its paired 95% interval over seeds lies wholly below
  zero;
- within a target, each cell is compared with the best cell by the paired interval of
  their per-seed differences (signed the same way); a cell whose interval reaches zero
  is *not separable* from the best, whatever its mean.

The cross-target view compares entries within one task type and headline metric (an
accuracy and an R² are never averaged together, nor the two headlines of a task type
whose plugin changed its headline between versions) and never averages over missing
cells: an entry's mean headline and mean rank (Borda) use only the targets of that task
type on which every compared entry has a result, and its coverage says on how many
targets it has one.

Runs on groups of targets (domain adaptation) add, all read from the records as data:

- for each plugin P a cell's runs are paired with (``nt_vs_<P>``, see `frame`), the
  interval of those per-seed differences (``nt_vs_<P>_mean``, ``_low``, ``_high``,
  ``_std``, ``_seeds``), flagged ``nt_vs_<P>_worse`` (negative transfer of the
  adaptation) only when it lies wholly below zero;
- an *upper bound* is a cell whose runs were given labels their roles withhold (the
  record's ``revealed``, e.g. an oracle selection on the unlabelled domain's val labels):
  it is shown, but never ranked, never best, never in "vs best", and left out of the
  view across targets;
- the *reference* cells of a target are those of the plugins its runs are paired with
  (the ERM every adaptation is compared with; without pairings, the cells of the
  source-only family); they alone carry the domain gap (``domain_gap_*``: the headline
  on the other role's test split − on the scored one, over seeds), and their selection
  rule is the target's: a cell chosen by another rule says so (``selection_shown``);
- `seed_notes`: adversarial methods vary from seed to seed, so a cell of that family
  with fewer than `ADVERSARIAL_SEEDS` seeds is named in the report's notes.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd

from .frame import compared_columns
from .stats import Interval, paired_interval, t_interval

CELL_INPUTS = ["status", "seed", "headline_test", "headline_train", "headline_val", "overfitting_gap",
               "negative_transfer", "n_train", "wall_seconds", "peak_memory_mb", "trainable_params", "total_params"]
ENTRY_COLUMNS = ["entry", "source", "strategy", "variant_note", "baseline", "source_identity", "strategy_plugin",
                 "upper_bound", "family"]
GROUP_INPUTS = ["domain_gap", "other_headline_test", "selection_rule", "revealed", "other_role", "other_target",
                "scored", "scored_target"]
"""What runs on groups of targets add to a cell's inputs (`frame.GROUP_COLUMNS`)."""
ADVERSARIAL = "adversarial"
"""The method family (a strategy's record: ``details.strategy.method.family``) whose
results vary most from seed to seed."""
ADVERSARIAL_SEEDS = 3
SOURCE_ONLY = "source-only"
"""The method family of a strategy that trains on the labelled domain alone (ERM): the
reference of a target whose runs name no pairing."""
TARGET_COLUMNS = ["target_key", "target_label", "target_identity", "task", "metric", "higher_is_better",
                  "metric_low", "metric_high"]


def _bound(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _ranges(target: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """The range of the target's headline, and of a difference of two headline values."""
    low, high = _bound(target["metric_low"]), _bound(target["metric_high"])
    value = (-math.inf if low is None else low, math.inf if high is None else high)
    width = math.inf if low is None or high is None else high - low
    return value, (-width, width)


def _interval_columns(prefix: str, interval: Interval, with_std: bool = True) -> dict:
    columns = {f"{prefix}_mean": interval.mean, f"{prefix}_low": interval.low, f"{prefix}_high": interval.high}
    if with_std:
        columns[f"{prefix}_std"] = interval.std
    return columns


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def _max(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else math.nan


def _joined(values) -> str:
    """The distinct texts among `values`, sorted and joined ('' when none)."""
    return ", ".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def _first(values):
    found = [v for v in values if isinstance(v, str) and v]
    return found[0] if found else None


def _group_summary(runs: pd.DataFrame, ok: np.ndarray, difference_range, compared: list[str]) -> dict:
    """A cell's comparisons with its paired runs, its selection rule, what it was given
    that its roles withhold, and its domain gap over seeds (kept only for reference cells)."""
    out = {}
    for name in compared:
        values = pd.to_numeric(runs[name], errors="coerce").to_numpy(dtype=float)[ok]
        interval = t_interval(values).clipped(*difference_range)
        out |= {**_interval_columns(name, interval), f"{name}_seeds": interval.n,
                f"{name}_worse": interval.below_zero, f"{name}_better": interval.above_zero}
    gap = t_interval(pd.to_numeric(runs["domain_gap"], errors="coerce").to_numpy(dtype=float)[ok])
    out |= {"selection": _joined(runs["selection_rule"].to_numpy()[ok]),
            "revealed": _joined(runs["revealed"].to_numpy()),
            **_interval_columns("domain_gap", gap.clipped(*difference_range)), "domain_gap_seeds": gap.n,
            "other_test_mean": _mean(pd.to_numeric(runs["other_headline_test"], errors="coerce")
                                     .to_numpy(dtype=float)[ok]),
            **{name: _first(runs[name].to_numpy()) for name in ("other_role", "other_target", "scored",
                                                                "scored_target")}}
    return out


def _summarise(runs: pd.DataFrame, target: dict, compared: list[str] = ()) -> dict:
    """The statistics of one cell from its runs (possibly none)."""
    column = {name: pd.to_numeric(runs[name], errors="coerce").to_numpy(dtype=float) for name in CELL_INPUTS[2:]}
    status = runs["status"].to_numpy()
    ok = (status == "ok") & np.isfinite(column["headline_test"])
    failed = Counter(status[status != "ok"])
    value_range, difference_range = _ranges(target)
    nt = t_interval(column["negative_transfer"][ok]).clipped(*difference_range)
    return {
        "n_runs": len(runs), "n_seeds": int(ok.sum()), "n_failed": int(sum(failed.values())),
        "failures": ", ".join(f"{n} {name}" for name, n in sorted(failed.items())),
        "seeds": ",".join(str(s) for s in sorted(set(runs["seed"].to_numpy()[ok].tolist()))),
        **_interval_columns("test", t_interval(column["headline_test"][ok]).clipped(*value_range)),
        "train_mean": _mean(column["headline_train"][ok]), "val_mean": _mean(column["headline_val"][ok]),
        **_interval_columns("gap", t_interval(column["overfitting_gap"][ok]).clipped(*difference_range),
                            with_std=False),
        **_interval_columns("nt", nt), "nt_seeds": nt.n,
        "negative_transfer": nt.below_zero, "positive_transfer": nt.above_zero,
        "n_train": _mean(column["n_train"][ok]), "wall_mean": _mean(column["wall_seconds"][ok]),
        "peak_memory_mean": _mean(column["peak_memory_mb"][ok]), "peak_memory_max": _max(column["peak_memory_mb"][ok]),
        "trainable_params": _mean(column["trainable_params"][ok]), "total_params": _mean(column["total_params"][ok]),
        **_group_summary(runs, ok, difference_range, list(compared)),
    }


def cell_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (target, entry), missing cells included; best first within a target."""
    if frame.empty:
        return pd.DataFrame(columns=TARGET_COLUMNS + ENTRY_COLUMNS + ["n_seeds", "test_mean", "sign"])
    frame = _with_group_columns(frame)
    compared = compared_columns(frame)
    needed = frame[["target_key", "entry", *CELL_INPUTS, *GROUP_INPUTS, *compared]]  # narrow first: the wide
    runs_by_cell = dict(tuple(needed.groupby(["target_key", "entry"], sort=False)))  # table is slow to slice
    empty = needed.iloc[0:0]
    rows = []
    for _, of_task in frame.groupby(["task", "metric"], sort=True):
        entries = _entries(of_task)
        for _, target in of_task[TARGET_COLUMNS].drop_duplicates("target_key").iterrows():
            summary = target.to_dict()
            for _, entry in entries.iterrows():
                runs = runs_by_cell.get((target["target_key"], entry["entry"]), empty)
                rows.append({"target": target["target_label"], **summary, **entry.to_dict(),
                             **_summarise(runs, summary, compared)})
    cells = pd.DataFrame(rows)
    cells["sign"] = cells["higher_is_better"].map(lambda higher: 1.0 if higher else -1.0)
    cells = _references(cells, frame)
    cells = _compare_with_best(cells, frame)
    order = cells.assign(_score=cells["sign"] * cells["test_mean"])
    return order.sort_values(["target_label", "_score", "baseline", "source", "strategy", "variant_note"],
                             ascending=[True, False, True, True, True, True],
                             na_position="last", kind="stable").drop(columns="_score").reset_index(drop=True)


def _with_group_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A run table with the columns of runs on groups, empty where an older table lacks them."""
    missing = {name: None for name in [*GROUP_INPUTS, "strategy_plugin", "family", "paired"] if name not in frame}
    if "upper_bound" not in frame:
        missing["upper_bound"] = False
    return frame.assign(**missing) if missing else frame


def _entries(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per entry: its first run's columns, but an upper bound if any run of it was
    given withheld labels, and the method family any run of it names (a failed run's
    record has neither)."""
    entries = runs[ENTRY_COLUMNS].drop_duplicates("entry").set_index("entry", drop=False)
    by_entry = runs.groupby("entry", sort=False)
    entries["upper_bound"] = by_entry["upper_bound"].agg(lambda v: bool(v.fillna(False).astype(bool).any()))
    entries["family"] = by_entry["family"].agg(lambda v: _first(v.to_numpy()))
    return entries.reset_index(drop=True)


def _references(cells: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Which cells are their target's reference (the runs of the plugins the target's runs
    are paired with; without pairings, the source-only family), their domain gap kept and
    everyone else's dropped; and which cells say their selection rule (one that is not
    the reference's, when a target's cells use more than one)."""
    paired: dict[str, set[str]] = {}
    for key, text in zip(frame["target_key"], frame["paired"]):
        if isinstance(text, str) and text:
            paired.setdefault(key, set()).update(json.loads(text))
    reference = []
    for _, cell in cells.iterrows():
        plugins = paired.get(cell["target_key"])
        regular = not cell["baseline"] and not cell["upper_bound"]
        reference.append(bool(regular and (cell["strategy_plugin"] in plugins if plugins
                                           else cell["family"] == SOURCE_ONLY)))
    cells = cells.assign(reference=reference)
    gap = [c for c in cells.columns if c.startswith("domain_gap_")] + ["other_test_mean"]
    cells.loc[~cells["reference"], gap] = math.nan
    shown = pd.Series(False, index=cells.index)
    for _, of_target in cells.groupby("target_key", sort=False):
        rules = set(of_target.loc[of_target["selection"] != "", "selection"])
        if len(rules) < 2:
            continue
        own = set(of_target.loc[of_target["reference"] & (of_target["selection"] != ""), "selection"])
        default = own.pop() if len(own) == 1 else None
        shown[of_target.index] = (of_target["selection"] != "") & (of_target["selection"] != default)
    return cells.assign(selection_shown=shown)


def _compare_with_best(cells: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Paired (by seed) comparison of every cell with the best cell of its target; the
    difference is signed by the headline's direction, so below zero is always worse.
    Upper bounds are compared with nothing: no rank, never best."""
    ok = frame[(frame["status"] == "ok") & frame["headline_test"].notna()]
    signs = dict(zip(ok["target_key"], ok["higher_is_better"].map(lambda higher: 1.0 if higher else -1.0)))
    by_seed = {key: {seed: signs[key[0]] * value for seed, value in zip(g["seed"], g["headline_test"])}
               for key, g in ok.groupby(["target_key", "entry"])}
    columns = {name: [] for name in ("rank_in_target", "best_delta_mean", "best_delta_low",
                                     "best_delta_high", "best_delta_seeds", "vs_best")}
    scored = cells.assign(_score=(cells["sign"] * cells["test_mean"]).where(~cells["upper_bound"].astype(bool)))
    ranks = scored.groupby("target_key")["_score"].rank(ascending=False, method="min")
    best_entry = {}
    for key, group in scored.dropna(subset=["_score"]).groupby("target_key"):
        best_entry[key] = group.sort_values(["_score", "n_seeds"], ascending=False, kind="stable").iloc[0]["entry"]
    for index, cell in cells.iterrows():
        best = best_entry.get(cell["target_key"])
        if cell["upper_bound"]:
            delta, verdict = Interval(0, *(math.nan,) * 4), "missing" if math.isnan(cell["test_mean"]) else UPPER
        elif best is None or math.isnan(cell["test_mean"]):
            delta, verdict = Interval(0, *(math.nan,) * 4), "missing"
        elif cell["entry"] == best:
            delta, verdict = Interval(0, 0.0, math.nan, math.nan, math.nan), "best"
        else:
            delta = paired_interval(by_seed.get((cell["target_key"], cell["entry"]), {}),
                                    by_seed.get((cell["target_key"], best), {})).clipped(*_ranges(cell)[1])
            verdict = "below best" if delta.below_zero else "not separable from best"
        columns["rank_in_target"].append(ranks[index])
        columns["best_delta_mean"].append(delta.mean)
        columns["best_delta_low"].append(delta.low)
        columns["best_delta_high"].append(delta.high)
        columns["best_delta_seeds"].append(delta.n)
        columns["vs_best"].append(verdict)
    return cells.assign(**columns)


UPPER = "upper bound"
"""The `vs_best` of a cell that is compared with nothing: it was given withheld labels."""


def compared_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that compete: neither baselines nor upper bounds."""
    if cells.empty:
        return cells
    keep = ~cells["baseline"].astype(bool)
    if "upper_bound" in cells:
        keep &= ~cells["upper_bound"].astype(bool)
    return cells[keep]


def seed_notes(cells: pd.DataFrame) -> list[str]:
    """One line per entry of the adversarial family that has fewer than
    `ADVERSARIAL_SEEDS` seeds with a result on some target."""
    if cells.empty or "family" not in cells:
        return []
    few = cells[(cells["family"] == ADVERSARIAL) & (cells["n_runs"] > 0) & (cells["n_seeds"] < ADVERSARIAL_SEEDS)
                & ~cells["baseline"].astype(bool)]
    notes = []
    for _, runs in few.groupby("entry", sort=False):
        first = runs.iloc[0]
        where = "; ".join(f"{row['target_label']}: {row['n_seeds']} of {row['n_runs']} run"
                          + ("s" if row["n_runs"] != 1 else "") for _, row in runs.iterrows())
        marks = [first["variant_note"]] if first["variant_note"] else []
        if runs["selection_shown"].any() and f"selection {first['selection']}" not in first["variant_note"]:
            marks.append(f"selection {first['selection']}")
        name = first["strategy"] + (f" [{', '.join(marks)}]" if marks else "")
        notes.append(f"{first['source']} · {name} is an adversarial method with fewer than {ADVERSARIAL_SEEDS} "
                     f"seeds with a result ({where}): adversarial methods vary from seed to seed; run them with "
                     f"at least {ADVERSARIAL_SEEDS} seeds before reading their intervals")
    return notes


OVERALL_COLUMNS = ["task", "metric", "higher_is_better", "entry", "source", "strategy", "variant_note", "coverage",
                   "n_targets", "mean_headline", "mean_rank", "compared_on", "best_or_tied", "selection",
                   "selection_shown"]
"""`selection`: the entry's selection rule where some target's table marks it
(`selection_shown`: it is not the rule of the runs the others are compared with)."""


def overall_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per task type and entry across that task type's targets: coverage, and the mean
    headline and mean rank over the targets on which every compared entry has a result.
    Baselines and upper bounds are not compared."""
    compared = compared_cells(cells)
    if compared.empty:
        return pd.DataFrame(columns=OVERALL_COLUMNS)
    tables = [_overall_of_task(of_task) for _, of_task in compared.groupby(["task", "metric"], sort=True)]
    return pd.concat(tables, ignore_index=True)


def _overall_of_task(compared: pd.DataFrame) -> pd.DataFrame:
    sign = float(compared["sign"].iloc[0])
    targets = sorted(compared["target_key"].unique())
    pivot = compared.set_index(["entry", "target_key"])["test_mean"].unstack().reindex(columns=targets)
    complete = complete_targets(compared)
    ranks = (sign * pivot[complete]).rank(axis=0, ascending=False, method="average")
    leaders = compared[compared["target_key"].isin(complete) & compared["vs_best"].isin(
        ["best", "not separable from best"])].groupby("entry").size()
    rows = []
    for _, entry in compared.drop_duplicates("entry").iterrows():
        values = pivot.loc[entry["entry"]]
        covered = int(values.notna().sum())
        rows.append({
            **{k: entry[k] for k in ("task", "metric", "higher_is_better", "entry", "source", "strategy",
                                     "variant_note")},
            "coverage": f"{covered}/{len(targets)} targets", "n_targets": covered,
            "mean_headline": float(values[complete].mean()) if complete else math.nan,
            "mean_rank": float(ranks.loc[entry["entry"]].mean()) if complete else math.nan,
            "compared_on": len(complete), "best_or_tied": int(leaders.get(entry["entry"], 0)),
            **_shown_rule(compared[compared["entry"] == entry["entry"]]),
        })
    table = pd.DataFrame(rows, columns=OVERALL_COLUMNS)
    table["_score"] = sign * table["mean_headline"]
    return table.sort_values(["mean_rank", "_score", "n_targets", "source", "strategy"],
                             ascending=[True, False, False, True, True], na_position="last",
                             kind="stable").drop(columns="_score").reset_index(drop=True)


def _shown_rule(cells: pd.DataFrame) -> dict:
    """An entry's selection rule as the across-targets table marks it: where its targets' tables do."""
    if "selection_shown" not in cells:
        return {"selection": "", "selection_shown": False}
    shown = cells[cells["selection_shown"].astype(bool)]
    return {"selection": _joined(shown["selection"]), "selection_shown": bool(len(shown))}


def complete_targets(cells: pd.DataFrame) -> list[str]:
    """Target keys on which every compared entry (no baseline, no upper bound) of their
    task type has at least one result."""
    compared = compared_cells(cells)
    if compared.empty:
        return []
    have = compared.groupby("target_key")["n_seeds"].apply(lambda n: bool(np.all(n > 0)))
    return sorted(have[have].index)
