"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Figures are drawn per task type (`tasks.TaskGroup`): the headline plot has one panel per
target with its y-axis named after the metric, and the NT heatmap and the gap plot are
one figure each per task type, because an NT in accuracy and an NT in R² cannot share a
colour scale. Axes follow the metric's range where it has one (accuracy: 0 to 1) and the
data's otherwise (an R² below 0 stays in view).

Figures are built on `matplotlib.figure.Figure` directly (no pyplot state, no GUI
backend), so reports can be built in worker processes and threads. Every label comes
from records, so it is shortened and its dollar signs escaped: matplotlib would read
text between two dollars as mathematics.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from . import display
from .tasks import Metric, TaskGroup

MAX_LABEL = 40
MISSING_COLOUR = "#d9d9d9"


def plot_label(value) -> str:
    text = " ".join(str(value).split())
    if len(text) > MAX_LABEL:
        text = text[:MAX_LABEL - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(min(width, 16), min(height, 40)), dpi=100, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _compared(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[~cells["baseline"].astype(bool)]


def task_figures(group: TaskGroup) -> dict[str, bytes | None]:
    """A task type's figures by figure id (None where there is nothing to draw)."""
    return {group.figure_id("headline"): headline_plot(group.cells, group.metric),
            group.figure_id("nt"): nt_heatmap(group.cells, group.metric),
            group.figure_id("gap"): gap_vs_size(group.cells, group.metric)}


def _nt_limit(values: np.ndarray, metric: Metric) -> float:
    """The colour scale's half-width: at least 5% of the metric's range (when it has one),
    so that noise around 0 is not drawn as deep colour."""
    floor = 0.05 * (metric.high - metric.low) if metric.bounded else 0.0
    limit = max(floor, float(np.nanmax(np.abs(values))))
    return limit if limit > 0 else 1.0


def _signed(value: float, limit: float) -> str:
    """A signed number with enough decimals for the scale it is drawn on."""
    decimals = max(2, min(6, 1 - math.floor(math.log10(limit))))
    return f"{value:+.{decimals}f}"


def nt_heatmap(cells: pd.DataFrame, metric: Metric) -> bytes | None:
    """Mean NT per source × target, one panel per strategy; flagged cells outlined, missing grey.
    `cells` are one task type's, so the colour scale is in one metric."""
    compared = _compared(cells).assign(strategy_label=lambda c: c.apply(display.label, axis=1))
    if compared.empty or compared["nt_mean"].notna().sum() == 0:
        return None
    strategies = sorted(compared["strategy_label"].unique())
    sources = sorted(compared["source"].unique())
    targets = sorted(compared["target_label"].unique())
    limit = _nt_limit(compared["nt_mean"].to_numpy(dtype=float), metric)
    columns = min(3 if len(targets) <= 3 else 2 if len(targets) <= 6 else 1, len(strategies))
    rows = math.ceil(len(strategies) / columns)
    figure = _figure(2.2 + columns * (1.4 + 1.1 * len(targets)), 0.6 + rows * (1.3 + 0.5 * len(sources)))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    image = None
    for number, (ax, strategy) in enumerate(zip(axes, strategies)):
        panel = compared[compared["strategy_label"] == strategy]
        grid = {(row["source"], row["target_label"]): row for _, row in panel.iterrows()}
        values = np.full((len(sources), len(targets)), np.nan)
        for i, source in enumerate(sources):
            for j, target in enumerate(targets):
                if (source, target) in grid:
                    values[i, j] = grid[(source, target)]["nt_mean"]
        ax.set_facecolor(MISSING_COLOUR)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for i, source in enumerate(sources):
            for j, target in enumerate(targets):
                _annotate(ax, i, j, values[i, j], grid.get((source, target)), limit)
        ax.set_xticks(range(len(targets)), [plot_label(t) for t in targets], rotation=20, ha="right")
        ax.set_yticks(range(len(sources)), [plot_label(s) for s in sources] if number % columns == 0 else [])
        ax.set_title(f"strategy: {plot_label(strategy)}", fontsize=10)
    for ax in axes[len(strategies):]:
        ax.set_visible(False)
    figure.colorbar(image, ax=list(axes[:len(strategies)]),
                    label=f"NT in test {plot_label(metric.name)} (mean over seeds)", shrink=0.9 if rows <= 2 else 0.3)
    return _png(figure)


def _annotate(ax, i: int, j: int, value: float, cell, limit: float) -> None:
    from matplotlib.patches import Rectangle

    if math.isnan(value):
        if cell is not None:  # no text where the source never ran this strategy at all
            why = "missing" if cell["n_seeds"] == 0 else "no baseline"
            ax.text(j, i, why, ha="center", va="center", fontsize=8, color="#555555")
        return
    flagged = bool(cell["negative_transfer"])
    ax.text(j, i, _signed(value, limit) + ("\nnegative" if flagged else ""), ha="center", va="center", fontsize=8,
            color="white" if abs(value) > 0.6 * limit else "black",
            fontweight="bold" if flagged else "normal")
    if flagged:
        ax.add_patch(Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="black", linewidth=2.5))


def _value_limits(cells: pd.DataFrame, metric: Metric) -> tuple[float, float]:
    """The headline's axis before its margin: the metric's range where it is bounded, the
    data (means, intervals, baseline bands) where it is not."""
    values = cells[["test_mean", "test_low", "test_high"]].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    if not len(values):  # a target without a result: only its missing marks are drawn
        values = np.array([0.0, 1.0])
    low = metric.low if metric.low is not None else float(values.min())
    high = metric.high if metric.high is not None else float(values.max())
    if high <= low:  # one value on an unbounded side: give it room
        room = max(0.5, 0.1 * abs(low))
        low, high = (low - room, high) if metric.low is None else (low, high + room)
    return low, high


def headline_plot(cells: pd.DataFrame, metric: Metric) -> bytes | None:
    """The test headline with 95% intervals per strategy, one panel per target of one task
    type; baselines as bands, a line at 0 where the axis crosses it (an R² below 0 is
    worse than predicting the mean)."""
    if cells.empty or cells["test_mean"].notna().sum() == 0:
        return None
    targets = sorted(cells["target_label"].unique())
    compared = _compared(cells).assign(strategy_label=lambda c: c.apply(display.label, axis=1))
    strategies = sorted(compared["strategy_label"].unique())
    sources = sorted(compared["source"].unique())
    colours = _colours(len(sources))
    columns = min(2, len(targets))
    rows = math.ceil(len(targets) / columns)
    figure = _figure(2.0 + columns * (2.2 + 1.2 * len(strategies)), 1.0 + 3.4 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    width = 0.8 / max(1, len(sources))
    ylabel = f"test {plot_label(metric.name)}" + ("" if metric.higher_is_better else f" ({metric.direction})")
    by_place = {key: group.iloc[0] for key, group in compared.groupby(["target_label", "source", "strategy_label"])}
    for ax, target in zip(axes, targets):
        here = cells[cells["target_label"] == target]
        _baseline_bands(ax, here[here["baseline"].astype(bool)], len(strategies))
        for k, source in enumerate(sources):  # one call per source: errorbar is slow to call
            found = [(x - 0.4 + width * (k + 0.5), by_place.get((target, source, strategy)))
                     for x, strategy in enumerate(strategies)]
            shown = [(x, cell) for x, cell in found if cell is not None and cell["n_seeds"] > 0]
            missing = [x for x, cell in found if cell is not None and cell["n_seeds"] == 0]
            if missing:  # an entry without a result here; no mark where the source never ran the strategy
                ax.plot(missing, [0.02] * len(missing), "x", color=colours[k], transform=ax.get_xaxis_transform())
            if shown:
                means = np.array([cell["test_mean"] for _, cell in shown], dtype=float)
                lows = np.array([cell["test_low"] for _, cell in shown], dtype=float)
                highs = np.array([cell["test_high"] for _, cell in shown], dtype=float)
                error = np.nan_to_num(np.vstack([means - lows, highs - means]), nan=0.0)
                ax.errorbar([x for x, _ in shown], means, yerr=error, fmt="o", color=colours[k], capsize=3,
                            label=plot_label(source))
        ax.set_xticks(range(len(strategies)), [plot_label(s) for s in strategies], rotation=15, ha="right")
        ax.set_xlim(-0.6, len(strategies) - 0.4)
        ax.set_ylabel(ylabel)
        low, high = _value_limits(here, metric)  # per panel: an unbounded metric's units differ by target
        ax.set_ylim(low - 0.02 * (high - low), high + 0.02 * (high - low))
        if low < 0 < high:
            ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"target: {plot_label(target)}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    _legend(figure, axes[0])
    return _png(figure)


def _baseline_bands(ax, baselines: pd.DataFrame, n_strategies: int) -> None:
    for _, cell in baselines.iterrows():
        if cell["n_seeds"] == 0:
            continue
        ax.axhline(cell["test_mean"], color="#444444", linestyle="--", linewidth=1,
                   label=plot_label(f"{cell['source']} · {cell['strategy']}"))
        if not display.is_nan(cell["test_low"]):
            ax.axhspan(cell["test_low"], cell["test_high"], color="#444444", alpha=0.12)


def _legend(figure, ax) -> None:
    handles, labels = [], []
    for axis in figure.axes:
        for handle, text in zip(*axis.get_legend_handles_labels()):
            if text not in labels:
                handles.append(handle)
                labels.append(text)
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8,
                      title="source (× = missing; dashed = from-scratch baseline, band = its 95% CI)",
                      title_fontsize=8)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


def gap_vs_size(cells: pd.DataFrame, metric: Metric) -> bytes | None:
    """Overfitting gap of one task type against training-set size; drawn only when the
    suite varies the size."""
    have = cells[cells["gap_mean"].notna() & cells["n_train"].notna()]
    if have["n_train"].round().nunique() < 2:
        return None
    entries = have.drop_duplicates("entry")
    colours = _colours(len(entries))
    figure = _figure(8, 5)
    ax = figure.subplots()
    for colour, (_, entry) in zip(colours, entries.iterrows()):
        points = have[have["entry"] == entry["entry"]].sort_values("n_train")
        low = (points["gap_mean"] - points["gap_low"]).fillna(0)
        high = (points["gap_high"] - points["gap_mean"]).fillna(0)
        # a line only where it reads as one series: one target per training-set size
        joined = not points["n_train"].round().duplicated().any()
        ax.errorbar(points["n_train"], points["gap_mean"], yerr=[low, high], marker="o", capsize=3, color=colour,
                    linestyle=("--" if entry["baseline"] else "-") if joined else "none",
                    label=plot_label(f"{entry['source']} · {display.label(entry)}"))
    if have["n_train"].max() > 10 * max(1.0, have["n_train"].min()):
        ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training-set size (examples)")
    ax.set_ylabel(f"overfitting gap ({metric.gap_order} {plot_label(metric.name)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(figure)
