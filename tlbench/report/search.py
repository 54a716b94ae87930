"""Tuned cells in reports: what each search chose, from how many trials, and whether
its grid was big enough.

Trial records (kind ``trial``) are never leaderboard rows: a trial is scored on
validation, and its test split was withheld. For each searched cell (the finals of one source, target and strategy entry) the report
shows the chosen configuration, the number of trials, the validation headline of the
choice, the spread of validation scores over the grid (`curves.sensitivity`: a method
that works only with one setting costs more to use than its best shows), the training
budget (epochs of the chosen configuration), and, drawn for each target, the expected
best validation score against the number of trials (Dodge et al. 2019,
`curves.expected_max`): a curve still climbing at the grid's size says the grid was too
small for the comparison to be settled.
"""

from __future__ import annotations

import json

import pandas as pd

from . import display
from .curves import expected_max, sensitivity

def tuned_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per searched cell (source, target, strategy) of the runs: what was chosen,
    from how many trials, at what validation score, its sensitivity and budget, and the
    expected best validation score after 1..N trials (from the final records' account
    of the search, so the report needs no trial records to show it)."""
    tuned = frame[frame["search_chosen"].notna() & (frame["status"] == "ok")]
    rows = []
    for (target, source, strategy), runs in tuned.groupby(["target_label", "source", "strategy"], sort=True):
        account = json.loads(runs.iloc[0]["search_account"])
        higher = bool(account.get("higher_is_better", runs.iloc[0]["higher_is_better"]))
        scores = [config.get("score") for config in account.get("configurations", [])]
        finite = [s for s in scores if isinstance(s, (int, float))]
        spread = sensitivity(finite, higher)
        chosen = json.loads(runs.iloc[0]["search_chosen"])
        rows.append({"target": target, "source": source, "strategy": strategy, "baseline": bool(runs.iloc[0]["baseline"]),
                     "chosen": ", ".join(f"{k}={json.dumps(v)}" for k, v in chosen.items()),
                     "trials": int(runs.iloc[0]["search_trials"] or 0), "configurations": len(scores),
                     "val_chosen": account.get("score"), "val_worst": spread["worst"], "val_range": spread["range"],
                     "val_std": spread["std"], "epochs": _epochs(runs.iloc[0]), "metric": runs.iloc[0]["metric"],
                     "expected_max": expected_max(finite, higher), "finals": int(runs["seed"].nunique()),
                     "refit": account.get("refit")})
    return pd.DataFrame(rows)


def _epochs(row) -> object:
    value = row.get("p_strategy_epochs")
    return None if display.is_nan(value) else value


def _columns(metric: str) -> list[display.Column]:
    def text(name: str, digits: int = 3):
        return lambda r: display.num(r[name], digits)

    return [
        display.Column("target", lambda r: str(r["target"]), lambda r: str(r["target"]), numeric=False),
        display.Column("source", lambda r: str(r["source"]), lambda r: str(r["source"]), numeric=False),
        display.Column("strategy", lambda r: str(r["strategy"]), lambda r: str(r["strategy"]), numeric=False),
        display.Column("chosen", lambda r: str(r["chosen"]), lambda r: str(r["chosen"]), numeric=False,
                       title="the configuration with the best validation score (mean over the search seeds)"),
        display.Column("trials", lambda r: str(r["trials"]), lambda r: r["trials"],
                       title="configurations × search seeds"),
        display.Column(f"val {metric}", text("val_chosen"), lambda r: r["val_chosen"],
                       title="validation score of the chosen configuration"),
        display.Column("worst", text("val_worst"), lambda r: r["val_worst"],
                       title="validation score of the worst configuration"),
        display.Column("spread", text("val_range"), lambda r: r["val_range"],
                       title="best − worst validation score over the grid: the strategy's sensitivity"),
        display.Column("epochs", lambda r: "—" if display.is_nan(r["epochs"]) else str(int(r["epochs"])),
                       lambda r: r["epochs"], title="training budget of the chosen configuration"),
        display.Column("refit", lambda r: str(r["refit"] or "—"), lambda r: str(r["refit"]), numeric=False,
                       title="what the chosen configuration was retrained on"),
        display.Column("finals", lambda r: str(r["finals"]), lambda r: r["finals"], title="seeds of the final runs"),
    ]


INTRO = ("Tuned cells: each configuration of a search was trained on the training split at the search seeds "
         "and scored on validation (trials never see a test split); the best was retrained with every seed "
         "(refit) and tested. *spread* is best − worst validation score over the grid; the figure shows the "
         "expected best validation score after n trials (Dodge et al. 2019): a curve still rising at the end "
         "means the grid was too small to settle the comparison.")


def tuned_markdown(cells: pd.DataFrame) -> str:
    from .markdown import _table

    lines = ["## Tuned cells", "", INTRO, ""]
    for metric, group in cells.groupby("metric", sort=True):
        lines += [_table(group, _columns(str(metric))), ""]
    return "\n".join(lines)


def tuned_html(cells: pd.DataFrame, figures: dict[str, tuple[bytes, bytes]]) -> str:
    from .html import esc, figure, sortable_table

    parts = ["<section id=\"tuned\"><h2>Tuned cells</h2>", f"<p>{esc(INTRO)}</p>"]
    for i, (metric, group) in enumerate(cells.groupby("metric", sort=True)):
        parts.append(sortable_table(group, _columns(str(metric)), f"tuned-{i}"))
    for figure_id, (png, _) in sorted(figures.items()):
        parts.append(figure(png, "expected best validation score against the number of trials",
                            "Expected best validation score after n trials, per tuned cell", figure_id))
    return "".join(parts) + "</section>"


def expected_max_figures(cells: pd.DataFrame) -> dict[str, tuple[bytes, bytes]]:
    """Per target: the expected best validation score against the number of trials of each
    tuned cell (PNG, SVG)."""
    from .comparison_plots import _svg
    from .plots import _figure, _png, plot_label

    figures = {}
    for i, (target, group) in enumerate(cells.groupby("target", sort=True)):
        figure = _figure(6, 3.6)
        ax = figure.add_subplot()
        for _, row in group.iterrows():
            curve = row["expected_max"]
            if curve:
                ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3,
                        label=plot_label(f"{row['source']} · {row['strategy']}"))
        ax.set_xlabel("configurations tried (n)")
        ax.set_ylabel(f"expected best val {group.iloc[0]['metric']}")
        ax.set_title(plot_label(f"{target}: expected best of n configurations"), fontsize=9)
        ax.legend(fontsize=7)
        figures[f"search-{i}"] = (_png(figure), _svg(figure))
    return figures
