"""Figures of the statistics across targets (`across`), as PNG and SVG.

- the critical-difference diagram: methods on their mean rank, a crossbar over each
  group no pair of which the post-hoc tests tell apart (scikit-posthocs draws it);
- IQM of the normalised gain with its stratified-bootstrap interval, per method;
- the probability-of-improvement heatmap, P(row > column);
- performance profiles: the share of runs whose normalised gain exceeds τ, with bands.

Like `plots`, every figure is a bare `matplotlib.figure.Figure` (no pyplot state) and
every label goes through `plots.plot_label`. SVG text is kept as text (not paths), with
no date or random ids in it, so the same records give the same bytes.
"""

from __future__ import annotations

import io

import numpy as np

from .across import PROFILE_BANDS, AcrossTargets, View, shown_views
from .plots import _figure, _png, plot_label

KINDS = ("cd", "iqm", "improvement", "profiles")


def _svg(figure) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tlbench"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def _labels(methods: list[str]) -> dict[str, str]:
    """Plot labels, unique even where shortening made two equal."""
    labels, seen = {}, {}
    for method in methods:
        label = plot_label(method)
        seen[label] = seen.get(label, 0) + 1
        labels[method] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    return labels


def cd_diagram(view: View):
    import scikit_posthocs

    ranks = view.ranks
    labels = _labels(ranks.methods)
    figure = _figure(8, 1.2 + 0.28 * len(ranks.methods))
    ax = figure.add_subplot()
    named = ranks.posthoc_pvalues.rename(index=labels, columns=labels)
    scikit_posthocs.critical_difference_diagram(ranks.ranks.rename(index=labels), named, ax=ax,
                                                label_fmt_left="{label} ({rank:.2f})",
                                                label_fmt_right="({rank:.2f}) {label}")
    ax.set_title(f"mean rank over {ranks.n_blocks} blocks ({view.block_name}); bars: not different "
                 f"({ranks.posthoc_name}, α = 0.05); Nemenyi CD = {ranks.cd:.2f}", fontsize=9)
    return figure


def iqm_plot(view: View):
    methods = view.by_iqm()
    labels = _labels(methods)
    figure = _figure(7, 1.0 + 0.35 * len(methods))
    ax = figure.add_subplot()
    y = np.arange(len(methods))[::-1]
    point = np.array([view.iqm[m][0] for m in methods])
    low = np.array([view.iqm[m][1] for m in methods])
    high = np.array([view.iqm[m][2] for m in methods])
    ax.errorbar(point, y, xerr=[point - low, high - point], fmt="o", color="#3569c8", capsize=3)
    ax.axvline(0, color="#888", linestyle="--", linewidth=1)
    ax.set_yticks(y, [labels[m] for m in methods])
    ax.set_xlabel("IQM of normalised gain over scratch (0: as scratch)")
    return figure


def improvement_heatmap(view: View):
    methods = view.ranks.methods
    labels = _labels(methods)
    matrix = np.array([[np.nan if a == b else view.improvement[a][b] for b in methods] for a in methods])
    size = 2.5 + 0.45 * len(methods)
    figure = _figure(size + 1.5, size)
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(len(methods)), [labels[m] for m in methods], rotation=45, ha="right")
    ax.set_yticks(range(len(methods)), [labels[m] for m in methods])
    if len(methods) <= 12:
        for i in range(len(methods)):
            for j in range(len(methods)):
                if i != j:
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(matrix[i, j] - 0.5) > 0.3 else "black")
    figure.colorbar(image, ax=ax, label="P(row > column)")
    return figure


PROFILES_DRAWN = PROFILE_BANDS
"""Performance profiles drawn: the methods with the highest IQM, those with bands (more
curves are unreadable; summary.json has every method's)."""


def profile_plot(view: View):
    figure = _figure(7, 4.5)
    ax = figure.add_subplot()
    taus = np.array(view.profile_taus)
    drawn = view.by_iqm(view.profiles)[:PROFILES_DRAWN]
    labels = _labels(drawn)
    for method in drawn:
        fraction, low, high = view.profiles[method]
        line, = ax.plot(taus, fraction, label=labels[method])
        ax.fill_between(taus, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("normalised gain τ")
    ax.set_ylabel("fraction of runs with gain > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    if len(view.profiles) > len(drawn):
        ax.set_title(f"the {len(drawn)} methods with the highest IQM, of {len(view.profiles)}", fontsize=9)
    return figure


def comparison_figures(stats: AcrossTargets, prefix: str) -> dict[str, tuple[bytes, bytes]]:
    """Figure id → (PNG, SVG) for the views that have something to draw: the four
    figures of the entries view, and the CD diagram of any other tested view (views on
    fewer than two blocks are not shown at all)."""
    drawn = {}
    for view in shown_views(stats):
        figures = {}
        if view.ranks.tested:
            figures["cd"] = cd_diagram(view)
        if view.name == "entries":
            if view.iqm:
                figures["iqm"] = iqm_plot(view)
                figures["profiles"] = profile_plot(view)
            if view.improvement:
                figures["improvement"] = improvement_heatmap(view)
        for kind, figure in figures.items():
            drawn[figure_id(prefix, view.name, kind)] = (_png(figure), _svg(figure))
    return drawn


def figure_id(prefix: str, view: str, kind: str) -> str:
    return f"{prefix}{kind}-{view}"
