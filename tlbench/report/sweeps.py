"""Sweeps in reports: every value of a swept parameter is run, and reported as an axis.

Two readings of an axis (`tlbench.plan.grids`: ``[targets.sweep]``, ``[strategies.sweep]``):

- a **target axis** with numeric values (``shots``, ``n_train``) is a data-size axis: the
  learning curve of each entry and of the from-scratch baseline (headline against the
  training examples actually used, ``n_train``, with 95% intervals over seeds); the gain
  over scratch at each size with its paired interval (the NT score, seed by seed); the
  crossover size from which that gain is no longer significantly positive
  (`curves.gain_crossover`); and the effective data transferred of Hernandez et al.
  2021: the scratch curve's power law err(n) = a·n^-b + c, inverted at the fine-tuned
  error (err = best possible headline − headline), gives the scratch data D_E the
  fine-tuned result is worth, D_T = D_E − D_F and the multiplier D_E / D_F, censored
  (and said so) where the fine-tuned error is below the fitted floor c;
- a **strategy axis** (``trainable_groups`` of partial fine-tuning, a LoRA rank) is read
  as the headline and the overfitting gap against the axis value, per source and
  target: freezing too much cannot adapt, too little overfits, and the plot shows
  where between the two a target lies.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from . import display
from .curves import effective_data_transferred, gain_crossover
from .stats import t_interval


def _number(text) -> float | None:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _error(values: np.ndarray, row) -> np.ndarray | None:
    """Headline values as errors (distance to the best possible value), or None when the
    headline has no best value."""
    if row["higher_is_better"] and not display.is_nan(row["metric_high"]):
        return float(row["metric_high"]) - values
    if not row["higher_is_better"] and not display.is_nan(row["metric_low"]):
        return values - float(row["metric_low"])
    return None


def learning_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (target sweep, entry, size): the headline with its interval, the gain
    over scratch with its paired interval, the effective data transferred, and each
    entry's crossover size."""
    runs = frame[frame["target_axis"].notna() & (frame["status"] == "ok")].copy()
    if runs.empty:
        return pd.DataFrame()
    runs["size_value"] = runs["target_axis_value"].map(_number)
    rows = []
    for (family, axis, metric), sweep in runs.groupby(["target_family", "target_axis", "metric"], sort=True):
        if sweep["size_value"].isna().any() or sweep["size_value"].nunique() < 2:
            continue
        scratch = sweep[sweep["baseline"]]
        first = sweep.iloc[0]
        scratch_sizes = scratch.groupby("size_value")["n_train"].mean()
        scratch_errors = _error(scratch.groupby("size_value")["headline_test"].mean().to_numpy(), first)
        for (source, strategy, baseline), entry in sweep.groupby(["source", "strategy", "baseline"], sort=True):
            entry_rows = []
            for size, at in entry.groupby("size_value", sort=True):
                value = _clipped(t_interval(at["headline_test"]), first)
                gain = t_interval(at["negative_transfer"]) if not baseline else None
                n_train = float(at["n_train"].mean())
                row = {"family": family, "axis": axis, "metric": metric, "source": source, "strategy": strategy,
                       "baseline": bool(baseline), "value": size, "n_train": n_train, "seeds": value.n,
                       "mean": value.mean, "low": value.low, "high": value.high,
                       "gain": gain.mean if gain else math.nan, "gain_low": gain.low if gain else math.nan,
                       "gain_high": gain.high if gain else math.nan}
                if not baseline and scratch_errors is not None and len(scratch_sizes) >= 3:
                    error = _error(np.array([value.mean]), first)
                    transferred = effective_data_transferred(scratch_sizes.to_numpy(), scratch_errors,
                                                             n_train, float(error[0]))
                    row.update(d_e=transferred["d_e"], d_t=transferred["d_t"],
                               multiplier=transferred["multiplier"], censored=transferred["censored"],
                               transfer_note=transferred["reason"])
                entry_rows.append(row)
            if not baseline:
                crossing = gain_crossover([r["n_train"] for r in entry_rows], [r["gain_low"] for r in entry_rows])
                for row in entry_rows:
                    row.update(crossover=crossing["crossover"], crossover_status=crossing["status"])
            rows += entry_rows
    return pd.DataFrame(rows)


def depth_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy sweep, source, target, value): headline and overfitting gap."""
    runs = frame[frame["strategy_axis"].notna() & (frame["status"] == "ok") & ~frame["baseline"]].copy()
    if runs.empty:
        return pd.DataFrame()
    runs["axis_number"] = runs["strategy_axis_value"].map(_number)
    rows = []
    runs["target_order"] = runs["target_axis_value"].map(_number)
    keys = ["strategy_family", "strategy_axis", "metric", "source", "target_order", "target_label"]
    for (family, axis, metric, source, order, target), sweep in runs.groupby(keys, sort=True, dropna=False):
        for value, at in sweep.groupby("strategy_axis_value", sort=False):
            head, gap = _clipped(t_interval(at["headline_test"]), at.iloc[0]), t_interval(at["overfitting_gap"])
            rows.append({"family": family, "axis": axis, "metric": metric, "source": source, "target": target,
                         "target_order": order,
                         "value": value, "number": _number(value), "seeds": head.n, "mean": head.mean,
                         "low": head.low, "high": head.high, "gap": gap.mean, "gap_low": gap.low,
                         "gap_high": gap.high})
    out = pd.DataFrame(rows)
    return out.sort_values(["family", "source", "target_order", "target", "number", "value"], na_position="last",
                           kind="stable")


def _size_text(value) -> str:
    return "—" if value is None or display.is_nan(value) else f"{value:,.0f}"


def curve_columns(metric: str) -> list[display.Column]:
    def num(name, signed=False):
        return lambda r: display.num(r.get(name), 3, signed)

    def interval(mean, low, high, signed=False):
        return lambda r: value_interval(r[mean], r[low], r[high], signed)

    def transferred(r) -> str:
        if r.get("censored") is True:
            return "censored (below the scratch floor)"
        if display.is_nan(r.get("d_t")):
            return "—"
        return f"D_T {r['d_t']:,.0f} · ×{r['multiplier']:.2f}"

    return [
        display.Column("sweep", lambda r: f"{r['family']} ({r['axis']})", lambda r: str(r["family"]), numeric=False),
        display.Column("entry", lambda r: f"{r['source']} · {r['strategy']}", lambda r: str(r["strategy"]),
                       numeric=False),
        display.Column("size", lambda r: _number_text(r["value"]), lambda r: r["value"],
                       title="the swept parameter's value"),
        display.Column("n_train", lambda r: _size_text(r["n_train"]), lambda r: r["n_train"],
                       title="training examples the runs used (mean over seeds)"),
        display.Column(f"test {metric}", interval("mean", "low", "high"), lambda r: r["mean"],
                       title="mean [95% interval] over seeds"),
        display.Column("gain over scratch", interval("gain", "gain_low", "gain_high", True), lambda r: r["gain"],
                       title="NT: the run minus its same-seed scratch baseline, mean [paired 95% interval]"),
        display.Column("crossover", lambda r: _size_text(r.get("crossover")), lambda r: r.get("crossover"),
                       title="n_train from which the gain is no longer significantly positive (— : significant "
                             "up to the largest size, or a baseline)"),
        display.Column("data transferred", transferred, lambda r: r.get("d_t"),
                       title="Hernandez et al. 2021: D_T = D_E − D_F from the scratch curve's power-law fit, "
                             "and the multiplier D_E / D_F"),
    ]


def value_interval(mean, low, high, signed: bool = False) -> str:
    """A mean and its 95% interval ('—' for no mean; the mean alone for one seed)."""
    if display.is_nan(mean):
        return "—"
    text = display.num(mean, 3, signed)
    return text if display.is_nan(low) else f"{text} {display.interval(low, high, 3, signed)}"


def _clipped(interval, row):
    """An interval of headline values, cut to the headline's range."""
    low = -math.inf if display.is_nan(row["metric_low"]) else float(row["metric_low"])
    high = math.inf if display.is_nan(row["metric_high"]) else float(row["metric_high"])
    return interval.clipped(low, high)


def _number_text(value) -> str:
    return display.num(value, 6).rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def depth_columns(metric: str) -> list[display.Column]:
    return [
        display.Column("sweep", lambda r: f"{r['family']} ({r['axis']})", lambda r: str(r["family"]), numeric=False),
        display.Column("source → target", lambda r: f"{r['source']} → {r['target']}", lambda r: str(r["target"]),
                       numeric=False),
        display.Column("value", lambda r: str(r["value"]), lambda r: r["number"]),
        display.Column(f"test {metric}", lambda r: value_interval(r["mean"], r["low"], r["high"]),
                       lambda r: r["mean"]),
        display.Column("overfitting gap", lambda r: value_interval(r["gap"], r["gap_low"], r["gap_high"], True),
                       lambda r: r["gap"]),
    ]


CURVES_INTRO = ("Data-size sweeps: each entry and the from-scratch baseline at every size. The gain over scratch "
                "is the NT score with its paired 95% interval; the crossover is the training-set size from which "
                "that gain is no longer significantly positive; data transferred is the extra from-scratch data "
                "the fine-tuned result is worth (Hernandez et al. 2021), read off a power law fitted to the "
                "scratch curve; it is censored where the fine-tuned error lies below the fitted floor.")
DEPTH_INTRO = ("Strategy sweeps: the headline and the overfitting gap (train − test) at every value of the swept "
               "parameter: too little to train cannot adapt, too much overfits.")


def sweeps_markdown(curves: pd.DataFrame, depth: pd.DataFrame) -> str:
    from .markdown import _table

    lines = ["## Sweeps", ""]
    for title, intro, frame, columns in (("Learning curves", CURVES_INTRO, curves, curve_columns),
                                         ("Strategy parameters", DEPTH_INTRO, depth, depth_columns)):
        if frame.empty:
            continue
        lines += [f"### {title}", "", intro, ""]
        for metric, group in frame.groupby("metric", sort=True):
            lines += [_table(group, columns(str(metric))), ""]
    return "\n".join(lines)


def sweeps_html(curves: pd.DataFrame, depth: pd.DataFrame, figures: dict[str, tuple[bytes, bytes]]) -> str:
    from .html import esc, figure, sortable_table

    parts = ['<section id="sweeps"><h2>Sweeps</h2>']
    for i, (title, intro, frame, columns) in enumerate((("Learning curves", CURVES_INTRO, curves, curve_columns),
                                                        ("Strategy parameters", DEPTH_INTRO, depth, depth_columns))):
        if frame.empty:
            continue
        parts += [f"<h3>{esc(title)}</h3>", f"<p>{esc(intro)}</p>"]
        for j, (metric, group) in enumerate(frame.groupby("metric", sort=True)):
            parts.append(sortable_table(group, columns(str(metric)), f"sweep-{i}-{j}"))
    for figure_id, (png, _) in sorted(figures.items()):
        caption = "Learning curves with 95% intervals" if figure_id.startswith("curve") else \
            "Headline and overfitting gap against the swept strategy parameter"
        parts.append(figure(png, caption, caption, figure_id))
    return "".join(parts) + "</section>"


def sweep_figures(curves: pd.DataFrame, depth: pd.DataFrame) -> dict[str, tuple[bytes, bytes]]:
    """A learning-curve figure per target sweep; a headline and gap figure per strategy sweep."""
    from .comparison_plots import _svg
    from .plots import _figure, _png, plot_label

    figures = {}
    if not curves.empty:
        for i, ((family, metric), sweep) in enumerate(curves.groupby(["family", "metric"], sort=True)):
            figure = _figure(6.5, 4)
            ax = figure.add_subplot()
            for (source, strategy, baseline), entry in sweep.groupby(["source", "strategy", "baseline"], sort=True):
                entry = entry.sort_values("n_train")
                style = dict(linestyle="--", color="black") if baseline else {}
                line, = ax.plot(entry["n_train"], entry["mean"], marker="o", markersize=3,
                                label=plot_label(f"{source} · {strategy}"), **style)
                ax.fill_between(entry["n_train"], entry["low"], entry["high"], alpha=0.15, color=line.get_color())
            ax.set_xscale("log")
            ax.set_xlabel("training examples (n_train)")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(f"{plot_label(family)}: learning curves (dashed: scratch)", fontsize=9)
            ax.legend(fontsize=7)
            figures[f"curve-{i}"] = (_png(figure), _svg(figure))
    if not depth.empty:
        for i, ((family, metric), sweep) in enumerate(depth.groupby(["family", "metric"], sort=True)):
            figure = _figure(9, 3.6)
            head, gap = figure.subplots(1, 2)
            for (source, target), curve in sweep.groupby(["source", "target"], sort=True):
                x = curve["number"] if curve["number"].notna().all() else range(len(curve))
                label = plot_label(f"{source} → {target}")
                head.errorbar(x, curve["mean"], yerr=_half(curve, "mean", "low", "high"), marker="o", markersize=3,
                              capsize=2, label=label)
                gap.errorbar(x, curve["gap"], yerr=_half(curve, "gap", "gap_low", "gap_high"), marker="o",
                             markersize=3, capsize=2, label=label)
            axis = sweep.iloc[0]["axis"]
            head.set_xlabel(axis)
            head.set_ylabel(f"test {metric}")
            gap.set_xlabel(axis)
            gap.set_ylabel("overfitting gap (train − test)")
            head.set_title(plot_label(f"{family}: {metric} against {axis}"), fontsize=9)
            gap.set_title(plot_label(f"{family}: overfitting gap against {axis}"), fontsize=9)
            head.legend(fontsize=7)
            figures[f"depth-{i}"] = (_png(figure), _svg(figure))
    return figures


def _half(frame: pd.DataFrame, mean: str, low: str, high: str):
    """Error-bar lengths from an interval (0 where a single seed gives none)."""
    lower = (frame[mean] - frame[low]).fillna(0).clip(lower=0)
    upper = (frame[high] - frame[mean]).fillna(0).clip(lower=0)
    return np.vstack([lower.to_numpy(), upper.to_numpy()])
