"""Transferability estimates next to the leaderboard, and how far to trust them.

Each estimator's score is averaged over seeds per (target, source), both by identity
(plugin, version, parameters; the source's fingerprint), as leaderboard cells are. For every target
and strategy, the sources' mean scores are compared with their fine-tuned mean test
headline (accuracy, R², MAE...) by Kendall's tau and by weighted tau (scipy's
`weightedtau`, which weighs agreement among the top-ranked sources most: picking the
best source is what an estimate is for). A higher score predicts a better source, so the
headline is compared in its direction (`sign * test_mean`): for an error metric, the
lowest error ranks first. Sources without a score (not applicable, failed) or without a
result are left out of that comparison, and the number compared is shown.

Targets are compared within a *data group* (see `conflicts`): when records disagree about
a target's data (merged directories from machines whose data differ), its runs are split
into data groups, and so are its estimates, by the same rule and together with those
runs (`estimate_data_groups`). A score only ever meets accuracies computed on the data
it was computed on; a score on data no run saw is shown but compared with nothing.
"""

from __future__ import annotations

import math

import pandas as pd

from ..hashing import config_hash
from ..results.records import V1_TASK
from .conflicts import data_groups, find_conflicts

SCORE_COLUMNS = ["target", "source", "estimator", "mean_score", "n_seeds", "not_applicable", "target_identity",
                 "source_identity", "target_key", "data_group"]
"""`target_key`: the target identity and data group, as the run table's (`frame`)."""
DATA_COLUMNS = ["target", "target_identity", "seed", "content_hash", "host"]
"""What decides a record's data group (`conflicts`)."""
CORRELATION_COLUMNS = ["target", "strategy", "estimator", "kendall_tau", "weighted_tau", "n_sources", "metric"]
"""`metric`: the headline the scores were compared with."""


def estimates_frame(records: list[dict]) -> pd.DataFrame:
    from .frame import source_identity_of, target_identity_of

    rows = []
    for record in records:
        spec = record["spec"]
        rows.append({
            "run_id": record["run_id"], "status": record["status"], "target": spec["target"]["id"],
            "source": spec["source"]["id"], "estimator": spec["estimator"]["id"], "seed": spec["seed"],
            "score": record["metrics"].get("score"),
            "not_applicable": bool((record.get("details") or {}).get("not_applicable")),
            "target_identity": target_identity_of(spec), "source_identity": source_identity_of(spec),
            "content_hash": spec["target"].get("content_hash"), "host": (record.get("provenance") or {}).get("host"),
        })
    return pd.DataFrame(rows, columns=["run_id", "status", "target", "source", "estimator", "seed", "score",
                                       "not_applicable", "target_identity", "source_identity", "content_hash",
                                       "host"])


def _target_key(identity: str, group: str) -> str:
    """A target key as the run table writes it (`frame.records_frame`): the identity,
    plus a hash of the data group's name when there is one."""
    return f"{identity}@{config_hash(group, 6)}" if group else identity


def estimate_data_groups(estimates: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each estimate's `target_key` and `data_group` (aligned with `estimates`): those of
    the runs computed on the same data.

    Estimates and runs are split into data groups together, by the rule that splits runs
    (`conflicts`: per machine, by content hash; machines that agree joined), and an
    estimate takes the key of the runs in its group (the most common one, should the
    joint grouping join what the runs' own kept apart). A group without runs has data no
    run saw: it gets a key of its own, named as the run table would name it, so that
    without `runs` estimates still meet the runs of the same machines.
    """
    runs = runs if runs is not None else pd.DataFrame(columns=[*DATA_COLUMNS, "target_key", "data_group"])
    parts = [part[DATA_COLUMNS] for part in (runs, estimates) if len(part)]
    both = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DATA_COLUMNS)
    joint = data_groups(both, find_conflicts(both)).to_numpy()
    of_runs = pd.DataFrame({"identity": runs["target_identity"].to_numpy(), "joint": joint[:len(runs)],
                            "key": runs["target_key"].to_numpy()})
    run_keys = {place: group["key"].value_counts().sort_index(kind="stable").idxmax()
                for place, group in of_runs.groupby(["identity", "joint"])}
    run_groups = dict(zip(runs["target_key"], runs["data_group"]))
    keys, groups = [], []
    for identity, group in zip(estimates["target_identity"], joint[len(runs):]):
        key = run_keys.get((identity, group))
        keys.append(key if key is not None else _target_key(identity, group))
        groups.append(run_groups[key] if key is not None else group)
    return pd.DataFrame({"target_key": keys, "data_group": groups}, index=estimates.index)


def _labels(frame: pd.DataFrame, label: str, identity: str) -> pd.Series:
    """`label`, with the identity appended where one label stands for several identities
    (merged reports whose suites configured an id differently): those are never pooled."""
    shared = frame.groupby(label)[identity].transform("nunique") > 1
    return frame[label].where(~shared, frame[label] + " (config #" + frame[identity].str[:6] + ")")


def _target_labels(scores: pd.DataFrame, runs: pd.DataFrame | None) -> pd.Series:
    """The leaderboard's name for a target the runs have; others named as it would name them."""
    shown = dict(zip(runs["target_key"], runs["target_label"])) if runs is not None and len(runs) else {}
    own = _labels(scores, "target", "target_identity")
    own = own.where(scores["data_group"] == "", own + " [data from " + scores["data_group"] + "]")
    return pd.Series([shown.get(key, label) for key, label in zip(scores["target_key"], own)], index=scores.index,
                     dtype=object)


def score_table(frame: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean score over seeds per (target, source, estimator), keyed by identity and by
    data group: with the run table (`runs`), each score sits in the data group of the
    runs on the same data (`estimate_data_groups`)."""
    if frame.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    frame = frame.assign(**estimate_data_groups(frame, runs))
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    ok = ok.assign(target=_target_labels(ok, runs), source=_labels(ok, "source", "source_identity"))
    rows = []
    keys = ["target_key", "source_identity", "estimator"]
    for (target_key, source_identity, estimator), group in ok.groupby(keys, sort=True):
        scores = pd.to_numeric(group["score"], errors="coerce").dropna()
        rows.append({"target": group["target"].iloc[0], "source": group["source"].iloc[0], "estimator": estimator,
                     "mean_score": float(scores.mean()) if len(scores) else math.nan,
                     "n_seeds": len(scores), "not_applicable": bool(group["not_applicable"].all()),
                     "target_identity": group["target_identity"].iloc[0], "source_identity": source_identity,
                     "target_key": target_key, "data_group": group["data_group"].iloc[0]})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS).sort_values(["target", "source", "estimator"], kind="stable",
                                                                 ignore_index=True)


def _directed(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells with `_score` = the test headline signed by its direction (higher: better),
    and their metric (tlbench 0.1's accuracy for cells that do not name one)."""
    sign = cells["sign"] if "sign" in cells else 1.0
    metric = cells["metric"] if "metric" in cells else V1_TASK["headline"]
    return cells.assign(_score=sign * cells["test_mean"], _metric=metric)


def _target_keys(table: pd.DataFrame) -> pd.Series:
    """A table's target keys; a table that has none keys by identity, which is the key
    of every target whose records agree on its data."""
    return table["target_key"] if "target_key" in table else table["target_identity"]


def correlation_table(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Kendall and weighted tau between estimated scores and fine-tuned headlines, each
    headline taken in its direction so that the best source ranks first.

    Scores meet headlines by identity (target, its data group, and source), not by their
    ids: a merged report may hold two configurations under one id, or one configuration
    on two versions of its data.
    """
    rows = []
    if scores.empty or cells.empty:  # before importing scipy.stats: a second and more
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    from scipy.stats import kendalltau, weightedtau

    runs = _directed(cells[~cells["baseline"].astype(bool) & (cells["n_seeds"] > 0)])
    runs = runs.assign(_key=_target_keys(runs))
    scores = scores.assign(_key=_target_keys(scores))
    for (target, key, strategy), group in runs.groupby(["target_label", "_key", "strategy"], sort=True):
        fine_tuned = group.groupby("source_identity")["_score"].max()
        for estimator, est in scores[scores["_key"] == key].groupby("estimator", sort=True):
            score = est.set_index("source_identity")["mean_score"].dropna()
            common = sorted(set(score.index) & set(fine_tuned.index))
            tau = weighted = math.nan
            if len(common) >= 2:
                x, y = score[common].to_numpy(), fine_tuned[common].to_numpy()
                tau = float(kendalltau(x, y).statistic)
                weighted = float(weightedtau(x, y).statistic)
            rows.append({"target": target, "strategy": strategy, "estimator": estimator,
                         "kendall_tau": tau, "weighted_tau": weighted, "n_sources": len(common),
                         "metric": group["_metric"].iloc[0]})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def estimate_rows(scores: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, targets) of the score table: one row per (target, source)."""
    estimators = sorted(scores["estimator"].unique())
    rows = []
    for (target, source), group in scores.groupby(["target", "source"], sort=True):
        by = group.set_index("estimator")
        cells = []
        for estimator in estimators:
            if estimator not in by.index:
                cells.append("missing")
            elif by.loc[estimator, "not_applicable"]:
                cells.append("n/a")
            else:
                cells.append(_fmt(by.loc[estimator, "mean_score"]))
        rows.append([target, source, *cells])
    return ["target", "source", *estimators], rows, sorted(scores["target"].unique())


def correlation_rows(correlations: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    rows = [[r.target, r.strategy, r.estimator, _fmt(r.kendall_tau, True), _fmt(r.weighted_tau, True),
             str(r.n_sources)] for r in correlations.itertuples()]
    return ["target", "strategy", "estimator", "Kendall τ", "weighted τ", "sources compared"], rows


EXPLANATION = ("Scores are means over seeds (higher: expected to transfer better); n/a: the estimator "
               "needs a source classifier the source does not have. τ compares each estimator's ranking "
               "of the sources with their fine-tuned test accuracy: +1 is the same order, −1 the reverse; "
               "weighted τ counts agreement among the top sources most.")
"""For targets scored by accuracy (tlbench 0.1's wording)."""

HEADLINE_EXPLANATION = (
    "Scores are means over seeds (higher: expected to transfer better); n/a: the estimator needs a source "
    "classifier the source does not have. τ compares each estimator's ranking of the sources with their "
    "fine-tuned headline metric on the target's test split, best first in the metric's direction (the lowest "
    "error first where lower is better): +1 is the same order, −1 the reverse; weighted τ counts agreement "
    "among the top sources most.")
"""For any other headline."""


def explanation(correlations: pd.DataFrame) -> str:
    """The accuracy wording unless some target is scored by another metric."""
    metrics = set(correlations["metric"]) if "metric" in correlations else set()
    return EXPLANATION if metrics <= {V1_TASK["headline"]} else HEADLINE_EXPLANATION


def estimates_markdown(scores: pd.DataFrame, correlations: pd.DataFrame) -> str:
    from tabulate import tabulate

    from .markdown import text

    headers, rows, _ = estimate_rows(scores)
    lines = ["## Transferability estimates", "", text(explanation(correlations)), "",
             tabulate([[text(c) for c in row] for row in rows], headers=headers, tablefmt="github",
                      disable_numparse=True)]
    if not correlations.empty:
        headers, rows = correlation_rows(correlations)
        lines += ["", tabulate([[text(c) for c in row] for row in rows], headers=headers, tablefmt="github",
                               disable_numparse=True)]
    return "\n".join(lines)


def estimates_html(scores: pd.DataFrame, correlations: pd.DataFrame) -> str:
    from .html import esc

    def table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    headers, rows, _ = estimate_rows(scores)
    parts = ['<section id="estimates"><h2>Transferability estimates</h2>', f"<p>{esc(explanation(correlations))}</p>",
             table(headers, rows, "estimate-scores")]
    if not correlations.empty:
        parts.append(table(*correlation_rows(correlations), "estimate-correlations"))
    parts.append("</section>")
    return "".join(parts)
