"""Reports: from records alone to leaderboard.md, leaderboard.html, results.csv,
results.parquet and summary.json.

The flow is: `results.collect` (validated records from one or many result
directories) → each run kind's rows (`results.kinds`: `frame.records_frame` for runs,
one row per run; `estimates.estimates_frame` for transferability estimates) →
`aggregate` (cells and the view across targets, each target by its task's headline
metric in its direction) → the writers (`markdown`, `html` with `plots`, `export`), which
walk the same task types (`tasks.task_groups`): one section, one across-targets table and
one set of figures per task type, named after its headline metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..results.store import StoreProblem
from ..wording import count


@dataclass
class Report:
    out: Path
    markdown: str
    n_records: int
    problems: list[StoreProblem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kept_apart: list[str] = field(default_factory=list)
    """Look-alike entries and targets the report shows apart (data conflicts, versions)."""


def report_meta(frame, cells, title: str, notes: list[str]) -> dict:
    """The report's header: counts, provenance, notes, and the task types it compares
    (each with its headline metric, direction, range and targets)."""
    import tlbench

    from .aggregate import complete_targets
    from .provenance import provenance_summary
    from .tasks import task_groups

    ok = int((frame["status"] == "ok").sum())
    seeds = sorted(int(s) for s in frame["seed"].unique())
    labels = dict(zip(cells["target_key"], cells["target_label"])) if len(cells) else {}
    machines = frame["host"].fillna("unknown host").nunique()
    headline = (f"{count(ok, 'run')} ok, {len(frame) - ok} failed · {count(len(labels), 'target')} · "
                f"{count(frame['entry'].nunique(), 'entry', 'entries')} · "
                f"seeds: {', '.join(map(str, seeds)) or '—'} · {count(machines, 'machine')}")
    return {
        "title": title, "headline": headline, "tlbench": tlbench.__version__,
        "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs_ok": ok, "runs_failed": len(frame) - ok, "seeds": seeds, "n_targets": len(labels),
        "complete_targets": sorted(labels[key] for key in complete_targets(cells)),
        "task_types": [group.summary() for group in task_groups(cells)],
        "provenance": provenance_summary(frame), "notes": notes,
    }


def previous_title(directory: Path) -> str | None:
    """The title a directory's last report used (a suite's name), so that rebuilding a
    report from the same records gives the same leaderboard."""
    import json

    try:
        title = json.loads((Path(directory) / "summary.json").read_text(encoding="utf-8"))["meta"]["title"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return title[:200] if isinstance(title, str) and title.strip() else None


def _estimates(estimates, cells, runs):
    """Estimator scores (in the data groups of the runs beside them) and their rank
    correlations with the fine-tuned cells."""
    from .estimates import correlation_table, score_table

    scores = score_table(estimates, runs=runs)
    return scores, correlation_table(scores, cells)


def import_libraries() -> None:
    """Import what building a report needs (pandas, matplotlib, pyarrow: a second or two),
    e.g. in a thread while runs execute; a failure here is left for `build_report` to raise."""
    import importlib

    for name in ("tlbench.report.plots", "tlbench.report.html", "tlbench.report.export", "tlbench.report.tasks",
                 "tlbench.report.aggregate", "tlbench.report.frame",
                 "tlbench.report.markdown", "tlbench.report.estimates", "matplotlib.figure",
                 "matplotlib.patches", "matplotlib.backends.backend_agg", "pyarrow.parquet", "scipy.special"):
        try:
            importlib.import_module(name)
        except Exception:
            pass


def _statistics(cells, overall, frame, rope: float | None, posthoc: str = "wilcoxon-holm"):
    """Per task type: the statistics across targets (every task type's, for summary.json;
    the report shows those with a test, `across.is_informative`), and the figures of
    those it shows (id → PNG, SVG)."""
    from .across import across_targets, is_informative
    from .across_sections import figure_prefix
    from .comparison_plots import comparison_figures
    from .tasks import task_groups

    stats, figures = [], {}
    for group in task_groups(cells, overall):
        of_group = across_targets(group, frame, rope, posthoc)
        stats.append(of_group)
        if is_informative(of_group):
            figures |= comparison_figures(of_group, figure_prefix(of_group))
    return stats, figures


def _protocol_sections(frame):
    """The sections of tuned cells (`search`), sweeps (`sweeps`) and multi-task runs
    (`multitask`), where the records have any: Markdown and HTML parts, figures (id → PNG, SVG) and their summary.json part."""
    from .export import _records
    from .multitask import multitask_cells, multitask_figures, multitask_html, multitask_markdown
    from .search import expected_max_figures, tuned_cells, tuned_html, tuned_markdown
    from .sweeps import depth_curves, learning_curves, sweep_figures, sweeps_html, sweeps_markdown

    markdown, html, figures, summary = [], [], {}, {}
    tuned = tuned_cells(frame)
    if not tuned.empty:
        search_figures = expected_max_figures(tuned)
        markdown.append(tuned_markdown(tuned))
        html.append(tuned_html(tuned, search_figures))
        figures |= search_figures
        summary["tuned"] = _records(tuned)
    curves, depth = learning_curves(frame), depth_curves(frame)
    if not (curves.empty and depth.empty):
        drawn = sweep_figures(curves, depth)
        markdown.append(sweeps_markdown(curves, depth))
        html.append(sweeps_html(curves, depth, drawn))
        figures |= drawn
        summary["sweeps"] = {"learning_curves": _records(curves), "strategy_axes": _records(depth)}
    multitask = multitask_cells(frame)
    if not multitask.empty:
        drawn = multitask_figures(multitask)
        markdown.append(multitask_markdown(multitask))
        html.append(multitask_html(multitask, drawn))
        figures |= drawn
        summary["multitask"] = _records(multitask)
    return markdown, html, figures, summary


def _figure_files(out: Path, figures: dict[str, tuple[bytes, bytes]]) -> list[Path]:
    """The statistics' figures as files too (figures/<id>.png and .svg), for papers and
    slides; figures of an earlier build that this one no longer draws are removed."""
    from .export import publish

    folder = out / "figures"
    written = []
    for figure_id, (png, svg) in sorted(figures.items()):
        folder.mkdir(parents=True, exist_ok=True)
        written += [publish(folder / f"{figure_id}.png", png), publish(folder / f"{figure_id}.svg", svg)]
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.suffix in (".png", ".svg") and stale not in written:
                stale.unlink()
    return written


def build_report(dirs: list[Path], out: Path, title: str | None = None, rope: float | None = None,
                 posthoc: str = "wilcoxon-holm") -> Report:
    """Read records from `dirs`, write the leaderboard files into `out`; `rope`: the
    region of practical equivalence of the Bayesian tests, in headline units
    (default `across.default_rope`); `posthoc`: the test the critical-difference groups
    come from (`ranking.POSTHOC`)."""
    from . import plots
    from .across import is_informative
    from .across_sections import across_html, across_markdown
    from .aggregate import cell_table, overall_table, seed_notes
    from .export import publish, write_summary, write_tables
    from ..results.collect import collect
    from ..results.kinds import RUN_KINDS
    from .estimates import estimates_html, estimates_markdown
    from .frame import frame_conflicts, kept_apart_notes
    from .html import leaderboard_html
    from .markdown import leaderboard_markdown
    from .tasks import task_groups

    out = Path(out)
    collection = collect([Path(d) for d in dirs])
    members = [record for name, kind in RUN_KINDS.items() if kind.multitask
               for record in kind.resolve("rows")(collection.of_kind(name))]  # a row per task of each run
    rows = {name: kind.resolve("rows")(collection.of_kind(name) + (members if name == "run" else []))
            for name, kind in RUN_KINDS.items() if not kind.multitask}
    frame = rows["run"]
    conflicts = frame_conflicts(frame)
    cells = cell_table(frame)
    overall = overall_table(cells)
    kept_apart = [str(c) for c in conflicts] + kept_apart_notes(frame)
    notes = ([str(p) for p in collection.problems]
             + [str(d) for d in collection.duplicates if not d.identical] + kept_apart + seed_notes(cells))
    if title is None and len(dirs) == 1:
        title = previous_title(dirs[0])
    meta = report_meta(frame, cells, title or ", ".join(Path(d).resolve().name for d in dirs), notes)
    estimate_scores, correlations = _estimates(rows["estimate"], cells, frame)
    has_estimates = not estimate_scores.empty
    stats, stat_figures = _statistics(cells, overall, frame, rope, posthoc)
    several = len(task_groups(cells, overall)) > 1
    shown = [s for s in stats if is_informative(s)]
    protocol_md, protocol_html, protocol_figures, protocol_summary = _protocol_sections(frame)
    stat_figures = {**stat_figures, **protocol_figures}
    markdown = leaderboard_markdown(cells, overall, meta, [across_markdown(s, several) for s in shown] + protocol_md
                                    + ([estimates_markdown(estimate_scores, correlations)] if has_estimates else []))
    figures = {figure_id: png for group in task_groups(cells, overall)
               for figure_id, png in plots.task_figures(group).items()}
    page = leaderboard_html(frame, cells, overall, meta, figures, [across_html(s, several, stat_figures) for s in shown]
                            + protocol_html
                            + ([estimates_html(estimate_scores, correlations)] if has_estimates else []))
    out.mkdir(parents=True, exist_ok=True)
    files = [publish(out / "leaderboard.md", markdown.encode("utf-8")),
             publish(out / "leaderboard.html", page.encode("utf-8")),
             *write_tables(frame, out),
             write_summary(out, meta, cells, overall, conflicts,
                           {"scores": estimate_scores, "correlations": correlations} if has_estimates else None,
                           across=[s.as_dict() for s in stats], extra=protocol_summary),
             *_figure_files(out, stat_figures)]
    return Report(out=out, markdown=markdown, n_records=len(frame), problems=collection.problems,
                  files=files, notes=notes, kept_apart=kept_apart)
