"""leaderboard.md: the tables a reader needs, as GitHub-flavoured Markdown (tabulate)."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate


def _num(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _interval(low: float, high: float, signed: bool = False) -> str:
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "—"
    return f"[{_num(low, 3, signed)}, {_num(high, 3, signed)}]"


def _text(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def cell_rows(cells: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, cell in cells.iterrows():
        accuracy = "missing" if cell["n_seeds"] == 0 else (
            _num(cell["test_mean"]) + ("" if math.isnan(cell["test_std"]) else f" ± {_num(cell['test_std'])}"))
        nt = "—"
        if not cell["baseline"] and not math.isnan(cell["nt_mean"]):
            nt = f"{_num(cell['nt_mean'], 3, True)} {_interval(cell['nt_low'], cell['nt_high'], True)}"
            if cell["negative_transfer"]:
                nt += " **negative transfer**"
        seeds = str(cell["n_seeds"]) + (f" ({cell['n_failed']} failed)" if cell["n_failed"] else "")
        rows.append([_text(cell["source"]), _text(cell["strategy"]), accuracy,
                     _interval(cell["test_low"], cell["test_high"]), seeds, _num(cell["train_mean"]),
                     _num(cell["gap_mean"], 3, True), nt, _num(cell["wall_mean"], 1)])
    return rows


CELL_HEADERS = ["source", "strategy", "test acc (mean ± std)", "95% CI", "seeds", "train acc",
                "gap (train − test)", "NT vs scratch [95% CI]", "wall s"]


def leaderboard_markdown(cells: pd.DataFrame, overall: pd.DataFrame, meta: dict) -> str:
    lines = [f"# tlbench leaderboard: {_text(meta['title'])}", ""]
    lines.append(f"{meta['runs_ok']} runs ok, {meta['runs_failed']} failed · seeds: {meta['seeds']} · "
                 f"devices: {_text(meta['devices'])} · tlbench {meta['tlbench']}")
    lines.append("")
    lines.append("Test accuracy is top-1 on the target's test split at the checkpoint selected on "
                 "validation. Gap = train − test accuracy. NT = test accuracy − that of the same-seed "
                 "from-scratch baseline; flagged only when its paired 95% interval lies below 0.")
    for target, group in cells.groupby("target", sort=True):
        n_train = group["n_train"].dropna()
        size = f" (n_train = {n_train.iloc[0]:.0f})" if len(n_train) and n_train.nunique() == 1 else ""
        lines += ["", f"## Target: {_text(target)}{size}", ""]
        lines.append(tabulate(cell_rows(group), headers=CELL_HEADERS, tablefmt="github",
                              disable_numparse=True))
    if not overall.empty:
        lines += ["", "## Across targets", "",
                  "Mean accuracy and mean rank are over the targets every row has results on "
                  "(never averaged over missing cells).", ""]
        rows = [[_text(r["source"]), _text(r["strategy"]), r["coverage"], _num(r["mean_accuracy"]),
                 _num(r["mean_rank"], 2)] for _, r in overall.iterrows()]
        lines.append(tabulate(rows, headers=["source", "strategy", "coverage", "mean acc", "mean rank"],
                              tablefmt="github", disable_numparse=True))
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {_text(note)}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"
