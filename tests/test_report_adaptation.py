"""The report of domain-adaptation runs (groups of targets), against numbers worked out by
hand on hand-made records: the negative transfer of the adaptation (each run against the
ERM run it is paired with, seed for seed) with its interval and flag, upper bounds kept
apart and never ranked, the domain gap, the selection rule, and the note on adversarial
methods run with fewer than three seeds; then the same through a real run of a tiny
suite from the command line.

The records are those the runner writes for a `[[groups]]` entry: two roles (a labelled
and an unlabelled domain), the unlabelled one scored, `spec.paired` naming the ERM run,
`metrics.nt_vs_erm`, `details.selection`, `details.by_role` (the labelled domain's test
split) and, for the oracle, `details.revealed`.
"""

from __future__ import annotations

import json
import math
import textwrap

import pandas as pd
import pytest
from test_report_aggregate import CLASSIFICATION, T_975_2
from test_report_html import Page

from tlbench.hashing import config_hash
from tlbench.plan.matrix import RunSpec
from tlbench.plan.suite import Entry
from tlbench.report import build_report
from tlbench.report.aggregate import cell_table, complete_targets, overall_table, seed_notes
from tlbench.report.frame import records_frame
from tlbench.results.records import headline_spec, new_record, validate_record
from tlbench.run.execute import record_spec

ARCHITECTURE = {"model": "resnet18", "input_size": 16}
ERRORS = {"name": "counting", "version": "1", "headline": "mae",
          "metrics": [{"name": "mae", "higher_is_better": False, "low": 0.0, "high": None,
                       "description": "mean absolute error of the count"}]}
"""A task scored by an error (lower is better), to check the signs."""

FAMILIES = {"erm": "source-only", "dann": "adversarial", "cdan": "adversarial"}


class GroupRecords:
    """Records of one group (labelled domain `src`, unlabelled domain `tgt`, the latter
    scored) as the runner writes them: the from-scratch baseline, ERM, and methods paired
    with ERM seed for seed."""

    def __init__(self, group: str = "src-to-tgt", task: dict = CLASSIFICATION):
        self.group, self.task = group, task
        self.sign = 1.0 if headline_spec(task)["higher_is_better"] else -1.0
        self.records: dict[str, dict] = {}
        self.baselines: dict[int, str] = {}
        self.erm: dict[int, dict] = {}

    def _targets(self) -> tuple:
        return (("labelled", Entry("target", "src", "digit-domains", "1", {"domain": "clean"})),
                ("unlabelled", Entry("target", "tgt", "digit-domains", "1", {"domain": "thick", "g": self.group})))

    def _record(self, spec: RunSpec, test, labelled, *, rule, family, revealed=None, nt_vs=None,
                status="ok") -> dict:
        headline = self.task["headline"]
        details, metrics = {}, {}
        if status == "ok":
            metrics = {f"test_{headline}": test, "n_train": 200, "n_test": 300, "wall_seconds": 2.0,
                       "peak_memory_mb": 100.0, "trainable_params": 10, "total_params": 10}
            details = {"selection": {"rule": rule, "reads": [], "selected_epoch": 3},
                       "strategy": {"method": {"family": family}},
                       "by_role": {"labelled": {"task": self.task["name"],
                                                "metrics": {f"test_{headline}": labelled, "n_test": 300}}}}
            if revealed:
                details["revealed"] = list(revealed)
            baseline = self.records.get(spec.baseline_run_id)
            if baseline is not None:
                theirs = baseline["metrics"][f"test_{headline}"]
                metrics |= {f"baseline_test_{headline}": theirs, "negative_transfer": self.sign * (test - theirs)}
            if nt_vs is not None:
                metrics |= nt_vs
        error = None if status == "ok" else {"type": "RuntimeError", "message": "boom", "traceback": "..."}
        record = new_record(record_spec(spec), spec.run_id, status, metrics=metrics, details=details, error=error,
                            provenance={"versions": {"tlbench": "0.1.0"}, "device": "cpu", "host": "lab"},
                            started_at="2025-01-01T10:00:00+00:00", finished_at="2025-01-01T10:01:00+00:00",
                            task=self.task)
        assert validate_record(record) == [], validate_record(record)
        self.records[spec.run_id] = record
        return record

    def _spec(self, strategy: Entry, seed: int, **kw) -> RunSpec:
        return RunSpec(Entry("source", "pre", "pretrain", "1", {"model": "resnet18"}), self._targets(), strategy,
                       seed, scored="unlabelled", group=self.group, architecture=ARCHITECTURE,
                       content_hashes=(config_hash(["src", seed]), config_hash(["tgt", self.group, seed])),
                       task=self.task, **kw)

    def baseline(self, seed: int, test: float, labelled: float) -> dict:
        spec = self._spec(Entry("strategy", "scratch-erm", "erm", "1", {"selection": "source-val"}), seed,
                          init="random", baseline=True)
        record = self._record(spec, test, labelled, rule="source-val", family="source-only")
        self.baselines[seed] = record["run_id"]
        return record

    def run(self, strategy: str, seed: int, test: float, labelled: float, *, plugin: str | None = None,
            rule: str = "source-val", revealed=None, store_nt: bool = True, status: str = "ok") -> dict:
        plugin = plugin or strategy
        erm = self.erm.get(seed) if plugin != "erm" else None
        spec = self._spec(Entry("strategy", strategy, plugin, "1", {"selection": rule}), seed,
                          source_fingerprint="weights", baseline_run_id=self.baselines.get(seed),
                          paired=(("erm", erm["run_id"]),) if erm else ())
        nt_vs = None
        if erm and store_nt and status == "ok":
            nt_vs = {"nt_vs_erm": self.sign * (test - erm["metrics"][f"test_{self.task['headline']}"])}
        record = self._record(spec, test, labelled, rule=rule, family=FAMILIES[plugin], revealed=revealed,
                              nt_vs=nt_vs, status=status)
        if plugin == "erm":
            self.erm[seed] = record
        return record

    def write(self, directory):
        runs = directory / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for run_id, record in self.records.items():
            (runs / f"{run_id}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        return directory


ERM = [(0.60, 0.90), (0.70, 0.95), (0.65, 0.92)]
"""(unlabelled test accuracy, labelled test accuracy) per seed."""
DANN = [0.55, 0.62, 0.58]
"""Below ERM on every seed: −0.05, −0.08, −0.07."""
ORACLE = [0.75, 0.80, 0.78]
"""DANN selected on the unlabelled domain's val labels: above everything, never ranked."""
CDAN = [0.66, 0.68]
"""Two seeds only, selected by another rule."""


def group_records() -> GroupRecords:
    rs = GroupRecords()
    for seed, (test, labelled) in enumerate(ERM):
        rs.baseline(seed, 0.30 + 0.01 * seed, 0.80)
        rs.run("erm", seed, test, labelled)
    for seed, test in enumerate(DANN):
        # seed 1's record has no stored comparison (its ERM run had not finished): the report recomputes it
        rs.run("dann", seed, test, 0.85, store_nt=seed != 1)
        rs.run("dann-oracle", seed, ORACLE[seed], 0.85, plugin="dann", rule="oracle", revealed=["unlabelled:val"])
    for seed, test in enumerate(CDAN):
        rs.run("cdan", seed, test, 0.88, rule="dev")
    return rs


@pytest.fixture(scope="module")
def tables():
    frame = records_frame(list(group_records().records.values()))
    cells = cell_table(frame)
    return frame, cells, overall_table(cells)


def cell_of(cells: pd.DataFrame, strategy: str) -> pd.Series:
    match = cells[cells["strategy"] == strategy]
    assert len(match) == 1, strategy
    return match.iloc[0]


def _half(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, T_975_2 * std / math.sqrt(len(values))


def test_the_adaptation_is_compared_with_erm_seed_for_seed(tables):
    frame, cells, _ = tables
    differences = [d - e for d, (e, _) in zip(DANN, ERM)]  # -0.05, -0.08, -0.07
    rows = frame[frame["strategy"] == "dann"].sort_values("seed")
    assert rows["nt_vs_erm"].tolist() == pytest.approx(differences)  # seed 1 recomputed from the ERM record
    dann = cell_of(cells, "dann")
    mean, half = _half(differences)
    assert dann["nt_vs_erm_seeds"] == 3 and dann["nt_vs_erm_mean"] == pytest.approx(mean)
    assert dann["nt_vs_erm_low"] == pytest.approx(mean - half) and dann["nt_vs_erm_high"] == pytest.approx(mean + half)
    assert dann["nt_vs_erm_high"] < 0 and dann["nt_vs_erm_worse"] and not dann["nt_vs_erm_better"]
    # CDAN: +0.06, -0.02 over its two seeds: the interval reaches 0, no flag
    cdan = cell_of(cells, "cdan")
    assert cdan["nt_vs_erm_seeds"] == 2 and cdan["nt_vs_erm_mean"] == pytest.approx(0.02)
    assert cdan["nt_vs_erm_low"] < 0 < cdan["nt_vs_erm_high"] and not cdan["nt_vs_erm_worse"]
    erm = cell_of(cells, "erm")
    assert math.isnan(erm["nt_vs_erm_mean"]) and erm["nt_vs_erm_seeds"] == 0 and not erm["nt_vs_erm_worse"]


def test_a_stale_stored_comparison_gives_way_to_the_paired_record():
    rs = group_records()
    for record in rs.records.values():
        if "nt_vs_erm" in record["metrics"]:
            record["metrics"]["nt_vs_erm"] = 0.5  # what a record may hold if its ERM run was redone
    frame = records_frame(list(rs.records.values()))
    rows = frame[frame["strategy"] == "dann"].sort_values("seed")
    assert rows["nt_vs_erm"].tolist() == pytest.approx([d - e for d, (e, _) in zip(DANN, ERM)])


def test_upper_bounds_are_kept_apart_and_never_ranked(tables):
    frame, cells, overall = tables
    oracle = cell_of(cells, "dann-oracle")
    assert oracle["upper_bound"] and oracle["revealed"] == "unlabelled:val"
    assert oracle["test_mean"] == pytest.approx(sum(ORACLE) / 3)  # the highest of all...
    assert oracle["vs_best"] == "upper bound" and math.isnan(oracle["rank_in_target"])  # ...and not ranked
    assert math.isnan(oracle["best_delta_mean"])
    ranked = cells[~cells["upper_bound"]]
    assert cell_of(cells, "cdan")["vs_best"] == "best"  # 0.67 over its two seeds
    assert sorted(ranked["rank_in_target"].dropna()) == [1.0, 2.0, 3.0, 4.0]
    assert "dann-oracle" not in set(overall["strategy"]) and set(overall["strategy"]) == {"erm", "dann", "cdan"}
    assert frame.loc[frame["strategy"] == "dann-oracle", "upper_bound"].all()
    assert not frame.loc[frame["strategy"] != "dann-oracle", "upper_bound"].any()
    # the oracle's comparison with ERM is still computed (how much selection could give), never flagged as ranked
    assert oracle["nt_vs_erm_mean"] == pytest.approx(sum(o - e for o, (e, _) in zip(ORACLE, ERM)) / 3)


def test_a_missing_upper_bound_does_not_make_a_target_incomplete():
    rs = group_records()
    for record in list(rs.records.values()):
        if record["spec"]["strategy"]["id"] == "dann-oracle":
            del rs.records[record["run_id"]]
    other = GroupRecords(group="other")
    for seed, (test, labelled) in enumerate(ERM):
        other.run("erm", seed, test, labelled)
        other.run("dann", seed, DANN[seed], 0.85)
        other.run("cdan", seed, 0.6, 0.85, rule="dev")
        other.run("dann-oracle", seed, 0.7, 0.85, plugin="dann", rule="oracle", revealed=["unlabelled:val"])
    cells = cell_table(records_frame([*rs.records.values(), *other.records.values()]))
    assert len(complete_targets(cells)) == 2  # the oracle has no result on src-to-tgt: still complete


def test_the_domain_gap_is_erm_s_labelled_minus_unlabelled_test_accuracy(tables):
    frame, cells, _ = tables
    gaps = [labelled - test for test, labelled in ERM]  # 0.30, 0.25, 0.27
    erm_rows = frame[frame["strategy"] == "erm"].sort_values("seed")
    assert erm_rows["domain_gap"].tolist() == pytest.approx(gaps)
    assert set(erm_rows["other_role"]) == {"labelled"} and set(erm_rows["other_target"]) == {"src"}
    assert set(erm_rows["scored"]) == {"unlabelled"} and set(erm_rows["scored_target"]) == {"tgt"}
    erm = cell_of(cells, "erm")
    mean, half = _half(gaps)
    assert erm["reference"] and erm["domain_gap_seeds"] == 3
    assert erm["domain_gap_mean"] == pytest.approx(mean)
    assert (erm["domain_gap_low"], erm["domain_gap_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert erm["other_test_mean"] == pytest.approx((0.90 + 0.95 + 0.92) / 3)
    # only the runs the others are compared with carry it: the baseline (ERM's recipe too) does not
    for strategy in ("dann", "cdan", "dann-oracle", "scratch-erm"):
        assert not cell_of(cells, strategy)["reference"] and math.isnan(cell_of(cells, strategy)["domain_gap_mean"])


def test_signs_follow_the_headline_s_direction():
    """With an error (lower is better): a larger error than ERM's is below 0, and a larger
    error on the scored domain than on the other is a positive gap."""
    rs = GroupRecords(task=ERRORS)
    for seed in range(2):
        rs.run("erm", seed, 2.0 + seed, 1.0)
        rs.run("dann", seed, 2.5 + seed, 1.0)
    frame = records_frame(list(rs.records.values()))
    assert frame.loc[frame["strategy"] == "dann", "nt_vs_erm"].tolist() == pytest.approx([-0.5, -0.5])
    assert frame.loc[frame["strategy"] == "erm", "domain_gap"].tolist() == pytest.approx([1.0, 2.0])


def test_the_selection_rule_is_shown_where_it_is_not_erm_s(tables):
    from tlbench.report import display

    _, cells, _ = tables
    labels = {cell["strategy"]: display.label(cell) for _, cell in cells.iterrows()}
    assert labels == {"erm": "erm", "dann": "dann", "scratch-erm": "scratch-erm",
                      "cdan": "cdan [selection dev]", "dann-oracle": "dann-oracle [upper bound, selection oracle]"}
    assert cell_of(cells, "cdan")["selection"] == "dev" and cell_of(cells, "erm")["selection"] == "source-val"
    overall = overall_table(cells)
    assert sorted(display.label(row) for _, row in overall.iterrows()) == ["cdan [selection dev]", "dann", "erm"]


def test_one_rule_everywhere_is_not_marked():
    rs = GroupRecords()
    for seed, (test, labelled) in enumerate(ERM):
        rs.run("erm", seed, test, labelled)
        rs.run("dann", seed, DANN[seed], 0.85)
    cells = cell_table(records_frame(list(rs.records.values())))
    assert not cells["selection_shown"].any()


def test_adversarial_cells_with_fewer_than_three_seeds_are_noted(tables):
    _, cells, _ = tables
    notes = seed_notes(cells)
    assert len(notes) == 1
    assert notes[0].startswith("pre · cdan [selection dev] is an adversarial method with fewer than 3 seeds")
    assert "src-to-tgt: 2 of 2 runs" in notes[0] and "at least 3 seeds" in notes[0]


def test_a_failed_seed_counts_too():
    rs = group_records()
    rs.run("dann", 3, 0.5, 0.8, status="error")  # four runs planned, three with a result: enough
    notes = seed_notes(cell_table(records_frame(list(rs.records.values()))))
    assert [n.split(" is ")[0] for n in notes] == ["pre · cdan [selection dev]"]
    rs = GroupRecords()
    for seed, (test, labelled) in enumerate(ERM):
        rs.run("erm", seed, test, labelled)
        rs.run("dann", seed, DANN[seed], 0.85, status="error" if seed == 2 else "ok")
    notes = seed_notes(cell_table(records_frame(list(rs.records.values()))))
    assert len(notes) == 1 and "src-to-tgt: 2 of 3 runs" in notes[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptation-report")
    report = build_report([group_records().write(root / "in")], root / "out", title="adaptation")
    return report, root / "out"


def _table_after(lines: list[str], start: int) -> list[str]:
    """The Markdown table that begins at or after line `start`."""
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first:end]


def test_markdown_shows_the_comparison_the_upper_bounds_and_the_gap(report):
    _, out = report
    text = (out / "leaderboard.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    target = lines.index("## Target: src-to-tgt (n_train = 200)")
    assert "Scored on the test split of tgt (unlabelled)." in lines[target + 2]
    assert "Checkpoints selected by source-val unless marked [selection …]." in lines[target + 2]
    ranked = _table_after(lines, target)
    header = [h.strip() for h in ranked[0].strip("|").split("|")]
    assert "NT vs scratch [95% CI]" in header and "NT vs erm [95% CI]" in header
    rows = {row.split("|")[3].strip(): [c.strip() for c in row.strip("|").split("|")] for row in ranked[2:]}
    assert set(rows) == {"erm", "dann", "cdan [selection dev]", "scratch-erm"}  # no upper bound among them
    column = header.index("NT vs erm [95% CI]")
    assert rows["dann"][column].endswith("worse than erm") and rows["dann"][column].startswith("-0.067 [")
    assert rows["cdan [selection dev]"][column] == "+0.020 [-0.488, +0.528]"  # 2 seeds: ± 12.706 · 0.0566 / √2
    assert rows["erm"][column] == "—"
    caption = next(i for i, line in enumerate(lines) if line.startswith("Upper bounds — selected on target labels"))
    assert "(unlabelled:val)" in lines[caption] and caption > target
    upper = _table_after(lines, caption)
    assert len(upper) == 3 and "dann-oracle [upper bound, selection oracle]" in upper[2]
    assert "not ranked (upper bound)" in upper[2]
    gap = next(i for i, line in enumerate(lines) if line.startswith("Domain gap of erm"))
    gap_table = _table_after(lines, gap)
    assert "test acc on src (labelled)" in gap_table[0] and "test acc on tgt (unlabelled)" in gap_table[0]
    assert "| +0.273 [+0.211, +0.336] " in gap_table[2]  # (0.30 + 0.25 + 0.27) / 3, by hand above
    assert "NT vs erm = the test headline − that of the erm run" in text
    assert "Baselines are not ranked, nor are upper bounds." in text
    notes = text[text.index("## Notes"):]
    assert "pre · cdan [selection dev] is an adversarial method with fewer than 3 seeds" in notes


def test_summary_and_results_carry_the_new_fields(report):
    _, out = report
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    by_strategy = {cell["strategy"]: cell for cell in summary["cells"]}
    dann = by_strategy["dann"]
    assert dann["nt_vs_erm_worse"] is True and dann["nt_vs_erm_seeds"] == 3
    assert dann["nt_vs_erm_high"] < 0 and dann["nt_vs_erm_mean"] == pytest.approx(-0.2 / 3)
    oracle = by_strategy["dann-oracle"]
    assert oracle["upper_bound"] is True and oracle["vs_best"] == "upper bound" and oracle["rank_in_target"] is None
    assert oracle["revealed"] == "unlabelled:val" and oracle["selection"] == "oracle"
    assert by_strategy["erm"]["domain_gap_mean"] == pytest.approx(0.82 / 3) and by_strategy["erm"]["reference"]
    assert by_strategy["cdan"]["selection_shown"] is True and by_strategy["cdan"]["family"] == "adversarial"
    assert {row["strategy"] for row in summary["overall"]} == {"erm", "dann", "cdan"}
    assert any("fewer than 3 seeds" in note for note in summary["meta"]["notes"])
    csv = pd.read_csv(out / "results.csv")
    assert {"nt_vs_erm", "upper_bound", "revealed", "selection_rule", "family", "scored", "paired",
            "domain_gap", "other_headline_test"} <= set(csv.columns)
    dann_runs = csv[csv["strategy"] == "dann"].sort_values("seed")
    assert dann_runs["nt_vs_erm"].tolist() == pytest.approx([-0.05, -0.08, -0.07])
    assert csv.loc[csv["strategy"] == "dann-oracle", "upper_bound"].all()
    assert set(csv.loc[csv["strategy"] == "dann-oracle", "revealed"]) == {"unlabelled:val"}
    assert pd.read_parquet(out / "results.parquet").columns.tolist() == csv.columns.tolist()


def test_html_keeps_the_upper_bounds_in_a_table_of_their_own(report):
    _, out = report
    page = Page()
    page.feed((out / "leaderboard.html").read_text(encoding="utf-8"))
    ids = [attrs.get("id") for tag, attrs in page.tags if tag == "table"]
    assert {"target-0", "target-0-upper-bounds", "target-0-domain-gap"} <= set(ids)
    assert ("tr", {"class": "upper-bound"}) in page.tags
    assert any(tag == "td" and attrs.get("class") == "num negative" for tag, attrs in page.tags)
    assert "dann-oracle [upper bound, selection oracle]" in page.text


SUITE = """
[suite]
name = "adaptation-report"
seeds = [0, 1]
device = "cpu"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 16

[[targets]]
id = "clean"
plugin = "digit-domains"
domain = "clean"
pool = "source"
classes = [0, 1, 2]
shots = 4
val_shots = 3
size = 16

[[targets]]
id = "rotated"
plugin = "digit-domains"
domain = "rotate-blur"
pool = "target"
classes = [0, 1, 2]
shots = 4
val_shots = 3
size = 16

[[groups]]
id = "clean-to-rotated"
labelled = "clean"
unlabelled = "rotated"

[[strategies]]
plugin = "erm"
epochs = 2
batch_size = 4

[[strategies]]
plugin = "dann"
selection = "dev"
discriminator_hidden = 16
epochs = 2
batch_size = 4

[[strategies]]
id = "coral-oracle"
plugin = "coral"
selection = "oracle"
epochs = 2
batch_size = 4
"""


def test_a_tiny_adaptation_suite_through_the_cli(tmp_path):
    from conftest import run_cli

    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent(SUITE), encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("run", str(suite), "--out", str(out), env={"TLBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Target: clean-to-rotated" in text and "| NT vs erm [95% CI]" in text
    assert "Scored on the test split of rotated (unlabelled)." in text
    assert "dann [selection dev]" in text and "coral-oracle [upper bound, selection oracle]" in text
    assert "Upper bounds — selected on target labels (unlabelled:val)" in text
    assert "Domain gap of erm" in text
    assert "rn · dann [selection dev] is an adversarial method with fewer than 3 seeds" in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    cells = {cell["strategy"]: cell for cell in summary["cells"]}
    assert cells["coral-oracle"]["upper_bound"] and cells["coral-oracle"]["rank_in_target"] is None
    assert cells["dann"]["nt_vs_erm_seeds"] == 2 and cells["erm"]["domain_gap_seeds"] == 2
    assert {row["strategy"] for row in summary["overall"]} == {"erm", "dann"}
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    stored = {r["run_id"]: r["metrics"].get("nt_vs_erm") for r in records if r["metrics"].get("nt_vs_erm") is not None}
    csv = pd.read_csv(out / "results.csv").set_index("run_id")
    assert stored and all(csv.loc[run_id, "nt_vs_erm"] == pytest.approx(value) for run_id, value in stored.items())
