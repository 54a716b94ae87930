"""leaderboard.md: the tables a reader needs, as GitHub-flavoured Markdown (tabulate).

Names come from suites, plugins and other people's records, so every one is made inert:
control characters dropped, HTML special characters written as entities, and pipes and
backticks escaped so a name cannot break a table.
"""

from __future__ import annotations

import re

import pandas as pd
from tabulate import tabulate

from . import display

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

DEFINITIONS = (
    "Test accuracy is top-1 on the target's test split at the checkpoint selected on validation; "
    "± is the standard deviation over seeds and the 95% CI a Student-t interval for the mean. "
    "\"vs best\" is the paired per-seed difference to the best cell of the target: ≈ best when its "
    "95% interval reaches 0, so the two are not separable with these seeds. Gap = train − test accuracy. "
    "NT = test accuracy − that of the same-seed from-scratch baseline; flagged as negative transfer only "
    "when its paired 95% interval lies below 0. A missing cell has no successful run; it is shown, "
    "never averaged away.")


def text(value) -> str:
    """A string from outside tlbench, safe inside a Markdown table."""
    value = _CONTROL.sub(" ", str(value))
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`")):
        value = value.replace(raw, safe)
    return value


def _table(rows: pd.DataFrame, columns: list[display.Column]) -> str:
    body = [[text(column.text(row)) for column in columns] for _, row in rows.iterrows()]
    return tabulate(body, headers=[column.header for column in columns], tablefmt="github",
                    disable_numparse=True)


def leaderboard_markdown(cells: pd.DataFrame, overall: pd.DataFrame, meta: dict,
                         sections: list[str] = ()) -> str:
    """The leaderboard; `sections` (Markdown, starting with a level-2 heading) come
    before the provenance."""
    lines = [f"# tlbench leaderboard: {text(meta['title'])}", "", text(meta["headline"]), "", DEFINITIONS]
    if cells.empty:
        lines += ["", "No records yet."]
    for _, group in cells.groupby("target_label", sort=True):
        lines += ["", f"## Target: {text(group['target_label'].iloc[0])}{_size(group)}", ""]
        lines.append(_table(group, display.CELL_COLUMNS))
    if not overall.empty:
        complete = meta["complete_targets"]
        lines += ["", "## Across targets", "",
                  f"Mean accuracy and mean rank are over the {len(complete)} of {meta['n_targets']} targets on "
                  f"which every entry has results" + (f" ({text(', '.join(complete))})" if complete else "")
                  + "; they are never averaged over missing cells. Baselines are not ranked.", ""]
        lines.append(_table(overall, display.OVERALL_COLUMNS))
    for section in sections:
        lines += ["", section]
    lines += ["", "## Provenance", ""] + [f"- {text(line)}" for line in provenance_lines(meta["provenance"])]
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {text(note)}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def _size(group: pd.DataFrame) -> str:
    sizes = group["n_train"].dropna()
    return f" (n_train = {sizes.iloc[0]:.0f})" if len(sizes) and sizes.nunique() == 1 else ""


def provenance_lines(provenance: dict) -> list[str]:
    lines = []
    for machine in provenance["machines"]:
        lines.append(f"machine {machine['host']}: {machine['runs']} runs ({machine['ok']} ok) on "
                     f"{', '.join(machine['devices']) or '?'}; tlbench {', '.join(machine['tlbench']) or '?'}; "
                     f"git {', '.join(machine['git_revisions']) or 'unknown'}; "
                     f"{machine['first'] or '?'} to {machine['last'] or '?'}")
    for library, versions in provenance["versions"].items():
        lines.append(f"{library}: " + ", ".join(f"{v} ({n} runs)" for v, n in versions.items()))
    return lines
