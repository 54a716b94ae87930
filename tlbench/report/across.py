"""Statistics across targets: which methods are better over many targets, and how sure.

Per task type (a headline metric in its direction, see `tasks`), three *views* compare
methods over blocks, each block a set of data every method of the view was run on:

- ``entries``: an entry (source · strategy) per method, a target per block;
- ``strategies``: a strategy per method, a (target, source) pair per block, so that a
  strategy is compared with the others on the same source;
- ``sources``: a source per method, a (target, strategy) pair per block.

Only *complete* blocks count (every method of the view has a result there), as for the
across-targets table: never an average over missing cells. Baselines and upper bounds
are not methods. On the complete blocks, each view has

A method with results on fewer than half the blocks of its view is left out of that
view (and named in its notes), so that one method run on a single target does not empty
the comparison of all the others. Methods are told apart by identity: a source or a
strategy whose versions or parameters differ between merged directories is two methods,
never one average.

- the rank-based comparison of `ranking` over each cell's mean headline: mean ranks,
  Friedman / Iman–Davenport, the groups of the critical-difference diagram from
  Wilcoxon–Holm (or, as an option, Nemenyi) post-hoc tests, the Nemenyi CD, and, in the
  entries view, a Bayesian signed-rank verdict for the top pairs. Its ROPE is in the
  headline's units: by default 1% of the headline's range (0.01 for an accuracy, one
  point), and none for a headline without a range (an error in dollars): then `--rope`
  must say what practically equivalent means, and until it does there is no verdict.
  The other views' blocks multiply targets by sources or strategies, and the Bayesian
  test's cost grows with the square of the blocks;
- the run-level aggregates of `robust` over the blocks' runs (every seed): the IQM of
  the normalised gain over scratch with a stratified-bootstrap interval, performance
  profiles of that gain, and the probability-of-improvement matrix of the headline.

The normalised gain of a run is (m − m_scratch) / (m_best − m_scratch), m_scratch its
same-seed from-scratch baseline and m_best the best value the headline can take where it
has one (see `robust.normalised_gain`). A headline without a best value is scaled by the
spread of the target's results instead: (m − m_scratch) / (the highest − the lowest of
the compared methods' and the baseline's means on the target). A run without a baseline,
or whose baseline left nothing to gain, has none; the notes count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import display, ranking, robust
from .aggregate import compared_cells
from .tasks import TaskGroup

DEFAULT_ROPE_FRACTION = 0.01
"""The default ROPE: this fraction of the headline's range (0.01 for an accuracy)."""
MIN_COVERAGE = 0.5
"""A method with results on fewer than this share of its view's blocks is left out of the view."""
PROFILE_TAUS = 41
PROFILE_BANDS = 10
"""Performance profiles get bootstrap bands for the methods with the highest IQM, the ones
the figure draws; every method's curve is in summary.json, the others without bands."""
VIEWS = ("entries", "strategies", "sources")
BLOCK_NAMES = {"entries": "target", "strategies": "target and source", "sources": "target and strategy"}


@dataclass
class View:
    """One view's comparison; `ranks` is None when it has fewer than two methods."""

    name: str
    methods: list[str]
    blocks: list[str]
    ranks: ranking.RankComparison | None
    iqm: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    """method → (IQM, low, high, runs) of the normalised gain."""
    improvement: dict[str, dict[str, float]] = field(default_factory=dict)
    profile_taus: list[float] = field(default_factory=list)
    profiles: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    normalisation: str = ""
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    """Methods left out of the view: name → why (their coverage)."""

    @property
    def block_name(self) -> str:
        return BLOCK_NAMES[self.name]

    def as_dict(self) -> dict:
        return {"view": self.name, "block": self.block_name, "methods": self.methods, "blocks": self.blocks,
                "n_blocks": len(self.blocks), "ranks": self.ranks.as_dict() if self.ranks else None,
                "left_out": self.left_out,
                "normalised_gain_iqm": {m: {"iqm": v[0], "low": v[1], "high": v[2], "runs": v[3]}
                                        for m, v in self.iqm.items()},
                "probability_of_improvement": self.improvement,
                "performance_profiles": {"taus": self.profile_taus,
                                         "methods": {m: {"fraction": f, "low": lo, "high": hi}
                                                     for m, (f, lo, hi) in self.profiles.items()}},
                "normalisation": self.normalisation, "notes": self.notes}

    def by_iqm(self, methods=None) -> list[str]:
        """Methods, highest IQM first; a method without one (NaN) last."""
        methods = list(self.iqm if methods is None else methods)
        return sorted(methods, key=lambda m: (np.isnan(self.iqm[m][0]), -np.nan_to_num(self.iqm[m][0])))


@dataclass
class AcrossTargets:
    """The statistics of one task type."""

    group: TaskGroup
    views: list[View]
    rope: float | None

    def as_dict(self) -> dict:
        return {"task": self.group.task, "metric": self.group.metric.name,
                "higher_is_better": self.group.metric.higher_is_better, "rope": self.rope,
                "libraries": library_versions(), "views": [view.as_dict() for view in self.views]}

    def view(self, name: str) -> View | None:
        return next((view for view in self.views if view.name == name), None)


STATISTICS_LIBRARIES = ("scipy", "statsmodels", "scikit-posthocs", "baycomp", "numpy")


def library_versions() -> dict[str, str | None]:
    """The versions of what computed the statistics: a reader can recompute them, and a
    Bayesian posterior sampled by another baycomp may differ in its last digit."""
    from ..provenance import versions_of

    return versions_of(STATISTICS_LIBRARIES)


def _unique_labels(cells: pd.DataFrame, labels: pd.Series, key: str) -> pd.Series:
    """`labels`, with a short key appended where one label stands for two keys."""
    shared = labels.groupby(labels).transform(lambda names: cells.loc[names.index, key].nunique() > 1)
    return labels.where(~shared.astype(bool), labels + " #" + cells[key].astype(str).str[:6])


def _strategy_identities(frame: pd.DataFrame) -> dict[str, str]:
    """Entry → the identity of its strategy (id, plugin, version, parameters), from its runs."""
    from ..hashing import config_hash

    columns = ["strategy", "strategy_plugin", "strategy_version",
               *sorted(c for c in frame.columns if c.startswith("p_strategy_"))]
    present = [c for c in columns if c in frame]
    first = frame.drop_duplicates("entry")[["entry", *present]]
    return {row["entry"]: config_hash({c: str(row[c]) for c in present}, 8) for row in first.to_dict("records")}


def _method_columns(cells: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Each cell's names as the views use them: entry, strategy and source labels, each
    unique per identity (a label that stands for two identities gets a short hash)."""
    shown = [column for column in ("strategy", "variant_note", "upper_bound", "selection", "selection_shown")
             if column in cells]
    strategy = pd.Series([display.label(row) for row in cells[shown].to_dict("records")], index=cells.index,
                         dtype=object)
    source = cells["source"].astype(str)
    entry = _unique_labels(cells, source + " · " + strategy, "entry")
    keyed = cells.assign(_strategy_key=cells["entry"].map(_strategy_identities(frame)).fillna(""))
    return cells.assign(_entry=entry, _strategy=_unique_labels(keyed, strategy, "_strategy_key"),
                        _source=_unique_labels(cells, source, "source_identity"))


VIEW_KEYS = {"entries": ("_entry", ["target_key"]),
             "strategies": ("_strategy", ["target_key", "_source"]),
             "sources": ("_source", ["target_key", "_strategy"])}


def _best_value(group: TaskGroup) -> float | None:
    """The best value the headline can take, signed (higher is better); None when unbounded."""
    metric = group.metric
    bound = metric.high if metric.higher_is_better else metric.low
    return None if bound is None else (bound if metric.higher_is_better else -bound)


def _runs_by_cell(frame: pd.DataFrame, group: TaskGroup, keys: set) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """(target key, entry) → per-seed signed headline and signed scratch headline of its ok runs."""
    runs = frame.loc[frame["status"] == "ok", ["target_key", "entry", "headline_test", "baseline_headline_test"]]
    sign = 1.0 if group.metric.higher_is_better else -1.0
    score = sign * pd.to_numeric(runs["headline_test"], errors="coerce").to_numpy(dtype=float)
    scratch = sign * pd.to_numeric(runs["baseline_headline_test"], errors="coerce").to_numpy(dtype=float)
    rows: dict[tuple, list[int]] = {}
    for number, key in enumerate(zip(runs["target_key"].tolist(), runs["entry"].tolist())):
        if key in keys and np.isfinite(score[number]):
            rows.setdefault(key, []).append(number)
    return {key: (score[found], scratch[found]) for key, found in rows.items()}


def _view(name: str, cells: pd.DataFrame, runs: dict, group: TaskGroup, rope: float,
          posthoc: str) -> View | None:
    method_column, block_columns = VIEW_KEYS[name]
    parts = [cells[column].astype(str).tolist() for column in block_columns]
    blocks = [" · ".join(values) for values in zip(*parts)]
    scored = cells.assign(_value=cells["sign"] * cells["test_mean"], _block=blocks)
    methods = sorted(scored[method_column].unique())
    if len(methods) < 2:
        return None
    matrix = scored.pivot_table(index="_block", columns=method_column, values="_value", aggfunc="first")
    coverage = matrix.notna().sum()
    sparse = [m for m in methods if coverage[m] < MIN_COVERAGE * len(matrix)]
    if len(methods) - len(sparse) < 2:
        sparse = []  # too few would be left: compare them all on what they share
    left_out = {m: f"results on {coverage[m]} of {len(matrix)} blocks" for m in sparse}
    methods = [m for m in methods if m not in left_out]
    scored = scored[scored[method_column].isin(methods)]
    matrix = matrix.reindex(columns=methods)
    complete = matrix.dropna(axis=0, how="any")
    shown = [cells["target_label"].astype(str).tolist(), *parts[1:]]  # a target's label, not its key
    labels: dict[str, str] = {}
    for block, *names in zip(blocks, *shown):
        labels.setdefault(block, " · ".join(names))
    view = View(name, methods, [labels[b] for b in complete.index],
                ranking.compare_ranks(complete, rope, posthoc, with_bayes=name == "entries" and rope is not None)
                if len(complete) else None, left_out=left_out)
    if left_out:
        view.notes.append("left out, with results on fewer than half the blocks: "
                          + "; ".join(f"{m} ({why})" for m, why in left_out.items()))
    if name == "entries" and rope is None and view.ranks is not None and view.ranks.tested:
        view.notes.append("no Bayesian verdict: the headline has no range to take a default region of practical "
                          "equivalence from; give one in its units with `tlbench report --rope`")
    if view.ranks is None:
        view.notes.append("no block on which every method has a result: nothing compared")
        return view
    if name != "entries" and len(complete) < len(matrix):
        view.notes.append(f"{len(matrix) - len(complete)} of {len(matrix)} blocks left out: some method has no "
                          "result there")
    _run_aggregates(view, scored[scored["_block"].isin(set(complete.index))], method_column, runs, group)
    return view


def _run_aggregates(view: View, cells: pd.DataFrame, method_column: str, runs: dict, group: TaskGroup) -> None:
    """IQM of normalised gains, performance profiles and P(improvement) over the blocks' runs."""
    best = _best_value(group)
    view.normalisation = (
        f"(m − m_scratch) / ({_num(abs(best))} − m_scratch)" if best is not None else
        "(m − m_scratch) / spread, the spread being the highest − the lowest of the compared methods' and the "
        "baseline's means on the target: relative to this pool, as the headline has no best value")
    spread = _spreads(cells, runs) if best is None else {}
    blocks = sorted(cells["_block"].unique())
    headline: dict[str, list[np.ndarray]] = {m: [] for m in view.methods}
    gains: dict[str, list[np.ndarray]] = {m: [] for m in view.methods}
    without_baseline = without_gain = 0
    cell_of = {}
    for block, method, target_key, entry in zip(cells["_block"].tolist(), cells[method_column].tolist(),
                                                cells["target_key"].tolist(), cells["entry"].tolist()):
        cell_of.setdefault((block, method), (target_key, entry))
    empty = (np.empty(0), np.empty(0))
    for block in blocks:
        for method in view.methods:
            target_key, entry = cell_of[(block, method)]
            score, scratch = runs.get((target_key, entry), empty)
            headline[method].append(score)
            if best is not None:
                gain = robust.normalised_gain(score, scratch, best)
            else:
                room = spread.get(target_key, 0.0)
                gain = (score - scratch) / room if room > 0 else np.full(len(score), np.nan)
            without_baseline += int(np.sum(~np.isfinite(scratch)))
            without_gain += int(np.sum(~np.isfinite(gain) & np.isfinite(scratch)))
            gains[method].append(gain)
    view.improvement = robust.improvement_matrix(headline)
    finite = np.concatenate([g for per in gains.values() for g in per]) if gains else np.empty(0)
    finite = finite[np.isfinite(finite)]
    if without_baseline:
        view.notes.append(f"{without_baseline} runs without a same-seed from-scratch baseline have no normalised "
                          "gain and are left out of the IQM and profiles")
    if without_gain:
        view.notes.append(f"{without_gain} runs whose baseline left nothing to gain (it scored the best value "
                          "there is) have no normalised gain and are left out of the IQM and profiles")
    if not len(finite):
        return
    low = max(-1.0, min(0.0, float(np.floor(finite.min() * 10) / 10)))  # below −1: under every τ shown
    taus = np.linspace(low, 1.0, PROFILE_TAUS)
    view.profile_taus = [float(t) for t in taus]
    for number, method in enumerate(view.methods):
        view.iqm[method] = (*robust.iqm_interval(gains[method], seed=number),
                            int(sum(np.isfinite(g).sum() for g in gains[method])))
    banded = set(view.by_iqm()[:PROFILE_BANDS])
    for number, method in enumerate(view.methods):
        fraction, lo, hi = robust.performance_profile(gains[method], taus, seed=number,
                                                      reps=robust.PROFILE_REPS if method in banded else 0)
        view.profiles[method] = ([float(v) for v in fraction], [float(v) for v in lo], [float(v) for v in hi])


def _spreads(cells: pd.DataFrame, runs: dict) -> dict[str, float]:
    """Target → the highest − the lowest of its compared cells' means and its baseline's mean
    (signed, higher is better): the scale of a headline without a best value."""
    values: dict[str, list[float]] = {}
    for target_key, entry, value in zip(cells["target_key"], cells["entry"], cells["_value"]):
        values.setdefault(target_key, []).append(float(value))
        scratch = runs.get((target_key, entry), (None, np.empty(0)))[1]
        if np.isfinite(scratch).any():
            values[target_key].append(float(np.nanmean(scratch)))
    return {key: float(np.nanmax(v) - np.nanmin(v)) for key, v in values.items()}


def _num(value: float) -> str:
    return f"{value:g}"


def default_rope(group: TaskGroup) -> float | None:
    """`DEFAULT_ROPE_FRACTION` of the headline's range; None for a headline without one."""
    metric = group.metric
    if metric.low is None or metric.high is None:
        return None
    return DEFAULT_ROPE_FRACTION * (metric.high - metric.low)


def across_targets(group: TaskGroup, frame: pd.DataFrame, rope: float | None = None,
                   posthoc: str = ranking.WILCOXON_HOLM) -> AcrossTargets:
    """The statistics of one task type's compared cells (see the module's docstring);
    `rope` in the headline's units (None: `default_rope`); `posthoc`: the test the
    groups come from (`ranking.POSTHOC`)."""
    rope = default_rope(group) if rope is None else rope
    cells = compared_cells(group.cells)
    views = []
    if len(cells):
        cells = _method_columns(cells[np.isfinite(cells["test_mean"].astype(float))], frame)
        runs = _runs_by_cell(frame, group, set(zip(cells["target_key"], cells["entry"])))
        for name in VIEWS:
            view = _view(name, cells, runs, group, rope, posthoc)
            if view is not None:
                views.append(view)
    return AcrossTargets(group, views, rope)


MIN_SHOWN = 2
"""Within a report that shows the statistics, a view is shown from this many complete
blocks: on one block, its ranks are that block's table again."""


def is_informative(stats: AcrossTargets) -> bool:
    """Whether a report should show the statistics: some view has enough blocks for its
    tests (`ranking.MIN_BLOCKS`); with fewer targets the per-target tables say it all."""
    return any(view.ranks is not None and view.ranks.tested for view in stats.views)


def shown_views(stats: AcrossTargets) -> list[View]:
    """The views a report shows (none unless `is_informative`); an untested one says why."""
    if not is_informative(stats):
        return []
    return [view for view in stats.views if view.ranks is not None and view.ranks.n_blocks >= MIN_SHOWN]
