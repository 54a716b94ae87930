"""Leaderboard statistics over seeds, and the cross-target view.

A cell is one (source, strategy, target, variant). Intervals are two-sided 95%
Student-t intervals over seeds; the negative-transfer interval is paired: it is taken
over the per-seed differences between a run and its same-seed baseline, and a cell is
flagged as negative transfer only when that whole interval lies below zero.

The cross-target view never averages over missing cells: a (source, strategy) row's
mean accuracy and mean rank use only the targets on which every compared row has a
result, and its coverage says how many targets it has.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CELL = ["target", "source", "strategy", "variant"]


def t_interval(values) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of a sample: a 95% Student-t interval for the mean."""
    x = np.asarray([v for v in values if v is not None and not pd.isna(v)], dtype=float)
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    from scipy.stats import t

    half = float(t.ppf(0.975, len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def cell_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: accuracy over seeds, gap, negative transfer, cost."""
    rows = []
    if frame.empty:
        return pd.DataFrame(columns=CELL)
    for key, group in frame.groupby(CELL, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        acc = t_interval(ok["test_accuracy"])
        nt = t_interval(ok["negative_transfer"])
        n_nt = int(ok["negative_transfer"].notna().sum())
        rows.append({
            **dict(zip(CELL, key)),
            "baseline": bool(group["baseline"].iloc[0]),
            "n_seeds": len(ok), "n_failed": int((group["status"] != "ok").sum()),
            "test_mean": acc[0], "test_std": acc[1], "test_low": acc[2], "test_high": acc[3],
            "train_mean": _mean(ok["train_accuracy"]), "val_mean": _mean(ok["val_accuracy"]),
            "gap_mean": _mean(ok["overfitting_gap"]),
            "nt_mean": nt[0], "nt_low": nt[2], "nt_high": nt[3], "nt_seeds": n_nt,
            "negative_transfer": bool(n_nt >= 2 and not math.isnan(nt[3]) and nt[3] < 0),
            "n_train": _mean(ok["n_train"]),
            "wall_mean": _mean(ok["wall_seconds"]), "peak_memory_mean": _mean(ok["peak_memory_mb"]),
            "trainable_params": _mean(ok["trainable_params"]),
        })
    cells = pd.DataFrame(rows)
    return cells.sort_values(["target", "test_mean"], ascending=[True, False],
                             na_position="last", kind="stable").reset_index(drop=True)


def _mean(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def overall_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (source, strategy) across targets: coverage, and mean accuracy and mean rank
    over the targets every compared row has results on."""
    if cells.empty:
        return pd.DataFrame(columns=["source", "strategy", "coverage"])
    have = cells[cells["n_seeds"] > 0]
    targets = sorted(cells["target"].unique())
    entries = cells[["source", "strategy", "variant"]].drop_duplicates()
    pivot = have.pivot_table(index=["source", "strategy", "variant"], columns="target",
                             values="test_mean", aggfunc="first")
    pivot = pivot.reindex(pd.MultiIndex.from_frame(entries), columns=targets)
    complete = [t for t in targets if pivot[t].notna().all()]
    ranks = pivot[complete].rank(axis=0, ascending=False, method="average") if complete else None
    rows = []
    for index, values in pivot.iterrows():
        covered = int(values.notna().sum())
        rows.append({
            "source": index[0], "strategy": index[1], "variant": index[2],
            "coverage": f"{covered}/{len(targets)} targets", "n_targets": covered,
            "mean_accuracy": float(values[complete].mean()) if complete else math.nan,
            "mean_rank": float(ranks.loc[index].mean()) if complete else math.nan,
            "compared_on": len(complete),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["mean_rank", "mean_accuracy"], ascending=[True, False],
                             na_position="last", kind="stable").reset_index(drop=True)
