"""Statistics across targets: checked against the papers' worked numbers and against the
libraries they come from (scipy, scikit-posthocs, baycomp), then through a real report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from test_report_aggregate import REGRESSION, RecordSet

from tlbench.cli import main
from tlbench.report import build_report
from tlbench.report import ranking, robust
from tlbench.report.across import across_targets
from tlbench.report.aggregate import cell_table, overall_table
from tlbench.report.frame import records_frame
from tlbench.report.tasks import task_groups

# ------------------------------------------------------------------ rank-based tests


def test_critical_difference_matches_demsar_and_the_issue_example():
    # Demšar (2006), Table 5(a): q_0.05 for k = 2..10
    for k, q in zip(range(2, 11), [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]):
        assert ranking.critical_difference(k, 6) == pytest.approx(q * math.sqrt(k * (k + 1) / 36), abs=2e-3)
    assert ranking.critical_difference(4, 14) == pytest.approx(1.25, abs=0.005)  # Demšar's worked example
    assert ranking.critical_difference(8, 19) == pytest.approx(2.41, abs=0.005)  # 8 strategies, 19 targets


def test_iman_davenport_matches_demsars_worked_example():
    # Demšar section 3.2.2: four methods on 14 data sets, χ²_F = 9.28 gives F_F = 3.69
    statistic, p = ranking.iman_davenport(9.28, 14, 4)
    assert statistic == pytest.approx(3.69, abs=0.01)
    assert p == pytest.approx(scipy_stats.f.sf(statistic, 3, 39))


def test_friedman_equals_the_textbook_formula_on_untied_data():
    rng = np.random.default_rng(3)
    matrix = pd.DataFrame(rng.random((12, 5)), columns=list("abcde"))
    n, k = matrix.shape
    ranks = ranking.mean_ranks(matrix)
    by_hand = 12 * n / (k * (k + 1)) * (float((ranks ** 2).sum()) - k * (k + 1) ** 2 / 4)
    result = ranking.friedman(matrix)
    assert result.statistic == pytest.approx(by_hand)
    assert ranks.idxmin() == matrix.rank(axis=1, ascending=False).mean().idxmin()


def test_wilcoxon_holm_equals_scikit_posthocs():
    import scikit_posthocs

    rng = np.random.default_rng(1)
    matrix = pd.DataFrame(np.round(rng.random((19, 8)), 2), columns=[f"m{i}" for i in range(8)])
    matrix["m1"] = matrix["m0"]  # a pair tied on every block
    matrix["m2"] = matrix["m3"] + 0.1  # a pair that differs everywhere
    long = pd.DataFrame({"value": matrix.to_numpy().T.ravel(), "method": np.repeat(matrix.columns, len(matrix))})
    expected = scikit_posthocs.posthoc_wilcoxon(long, val_col="value", group_col="method", p_adjust="holm",
                                                zero_method="zsplit").fillna(1.0)
    ours = ranking.wilcoxon_holm(matrix)
    assert np.allclose(ours.loc[expected.index, expected.columns].to_numpy(), expected.to_numpy())
    assert ours.loc["m0", "m1"] == 1.0


def test_groups_are_the_crossbars_scikit_posthocs_draws():
    import scikit_posthocs
    from matplotlib.figure import Figure

    rng = np.random.default_rng(7)
    matrix = pd.DataFrame(rng.random((30, 6)) + np.linspace(0, 0.5, 6), columns=list("abcdef"))
    ranks = ranking.mean_ranks(matrix)
    pvalues = ranking.wilcoxon_holm(matrix)
    ours = ranking.groups(pvalues, ranks)
    assert ours and any(len(group) < 6 for group in ours)  # something is told apart
    drawn = scikit_posthocs.critical_difference_diagram(ranks, pvalues, ax=Figure().add_subplot())
    by_rank = {round(float(rank), 9): name for name, rank in ranks.items()}
    bars = [sorted(by_rank[round(float(x), 9)] for x in line.get_xdata())
            for artists in drawn["crossbars"] for line in (artists if isinstance(artists, list) else [artists])]
    assert sorted(sorted(group) for group in ours) == sorted(bars)


def test_groups_with_singletons_cover_every_method_once_at_least():
    pvalues = pd.DataFrame(0.001, index=list("abc"), columns=list("abc"))
    ranks = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0})
    assert ranking.groups(pvalues, ranks) == []
    assert ranking.groups(pvalues, ranks, min_size=1) == [["a"], ["b"], ["c"]]


def test_bayesian_signed_rank_names_the_better_side():
    rng = np.random.default_rng(0)
    base = rng.random(20)
    matrix = pd.DataFrame({"good": base + 0.05, "bad": base, "same": base + rng.normal(0, 0.001, 20)})
    better = ranking.bayesian_signed_rank(matrix, "good", "bad", rope=0.01)
    assert better.p_left > 0.95 and better.verdict == "good better"
    worse = ranking.bayesian_signed_rank(matrix, "bad", "good", rope=0.01)
    assert worse.p_right > 0.95 and worse.verdict == "good better"
    equal = ranking.bayesian_signed_rank(matrix, "bad", "same", rope=0.01)
    assert equal.p_rope > 0.95 and equal.verdict == "practically equivalent"
    assert ranking.bayesian_signed_rank(matrix, "good", "bad", rope=0.01) == better  # seeded


def test_few_blocks_get_no_test_and_say_so():
    matrix = pd.DataFrame(np.random.default_rng(0).random((4, 3)), columns=list("abc"))
    result = ranking.compare_ranks(matrix, rope=0.01)
    assert not result.tested and result.friedman is None and result.bayes == []
    assert "fewer than 5" in result.note and "no test" in result.note

# ------------------------------------------------------------------ run-level aggregates


def test_iqm_is_scipys_trimmed_mean():
    values = np.random.default_rng(2).normal(size=40)
    assert robust.iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))


def test_stratified_bootstrap_keeps_every_target_and_matches_a_plain_bootstrap_on_one():
    rng = np.random.default_rng(4)
    strata = [np.arange(3.0), 10 + np.arange(5.0)]
    resampled = robust.stratified_resamples(strata, 50, rng)
    assert resampled.shape == (50, 8)
    assert np.all(resampled[:, :3] < 3) and np.all(resampled[:, 3:] >= 10)  # draws stay in their stratum
    one = rng.normal(size=60)
    point, low, high = robust.iqm_interval([one], reps=4000)
    plain = scipy_stats.bootstrap((one,), lambda x, axis: scipy_stats.trim_mean(x, 0.25, axis=axis),
                                  n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert point == pytest.approx(scipy_stats.trim_mean(one, 0.25))
    assert low == pytest.approx(plain.low, abs=0.05) and high == pytest.approx(plain.high, abs=0.05)


def test_probability_of_improvement_is_the_mann_whitney_statistic_averaged_over_targets():
    rng = np.random.default_rng(5)
    x = [rng.normal(size=3), np.array([0.5, 0.5, 0.7])]
    y = [rng.normal(size=5), np.array([0.5, 0.6])]
    expected = np.mean([scipy_stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)) for a, b in zip(x, y)])
    matrix = robust.improvement_matrix({"x": x, "y": y})
    assert matrix["x"]["y"] == pytest.approx(expected)
    assert matrix["x"]["y"] + matrix["y"]["x"] == pytest.approx(1.0)


def test_normalised_gain_by_hand():
    gain = robust.normalised_gain(np.array([0.9, 0.5, 0.4, 0.7]), np.array([0.5, 0.5, 0.5, 1.0]), 1.0)
    assert gain[:3] == pytest.approx([0.8, 0.0, -0.2])
    assert math.isnan(gain[3])  # the baseline was already perfect: nothing to gain


def test_performance_profile_counts_runs_above_each_threshold():
    taus = np.array([0.0, 0.5, 0.9])
    fraction, low, high = robust.performance_profile([np.array([0.1, 0.6]), np.array([0.95, 0.2])], taus, reps=200)
    assert fraction.tolist() == [1.0, 0.5, 0.25]
    assert np.all(low <= fraction) and np.all(fraction <= high)

# ------------------------------------------------------------------ through the report

QUALITY = {"lp": 0.10, "ft": 0.16, "bitfit": 0.12, "lora": 0.02}


def many_targets(n_targets: int = 8, seeds: int = 3, sources=(("good", 0.05), ("bad", -0.1)),
                 strategies: dict[str, float] = QUALITY) -> RecordSet:
    rng = np.random.default_rng(0)
    rs = RecordSet()
    for t in range(n_targets):
        for seed in range(seeds):
            base = 0.45 + 0.03 * t + rng.normal(0, 0.02)
            rs.baseline(f"t{t}", seed, base, train=1.0)
            for source, bonus in sources:
                for strategy, quality in strategies.items():
                    test = float(min(1.0, base + quality + bonus + rng.normal(0, 0.03)))
                    rs.run(source, strategy, f"t{t}", seed, test, train=1.0)
    return rs


def statistics_of(rs: RecordSet):
    frame = records_frame(list(rs.records.values()))
    cells = cell_table(frame)
    overall = overall_table(cells)
    (group,) = task_groups(cells, overall)
    return across_targets(group, frame), overall


def test_entry_ranks_are_the_across_targets_tables_and_strategies_are_compared_within_sources():
    stats, overall = statistics_of(many_targets())
    entries = stats.view("entries")
    assert entries.ranks.n_blocks == 8 and entries.ranks.tested
    table = {f"{row.source} · {row.strategy}": row.mean_rank for row in overall.itertuples()}
    assert {m: pytest.approx(r) for m, r in entries.ranks.ranks.items()} == table
    strategies = stats.view("strategies")
    assert strategies.ranks.n_blocks == 16 and set(strategies.methods) == set(QUALITY)
    assert strategies.ranks.methods[0] == "ft" and strategies.ranks.methods[-1] == "lora"
    assert stats.view("sources").ranks.methods == ["good", "bad"]
    assert entries.ranks.bayes and not strategies.ranks.bayes  # the Bayesian test: entries only


def test_normalised_gain_does_not_depend_on_the_other_methods():
    rs = many_targets()
    full, _ = statistics_of(rs)
    without_ft = RecordSet()
    without_ft.records = {run_id: record for run_id, record in rs.records.items()
                          if record["spec"]["strategy"]["id"] != "ft"}
    fewer, _ = statistics_of(without_ft)
    assert "ft" not in fewer.view("strategies").methods
    for method, (iqm, *_) in fewer.view("entries").iqm.items():
        assert iqm == pytest.approx(full.view("entries").iqm[method][0])  # the same runs, the same gain
    assert "(1 − m_scratch)" in full.view("entries").normalisation


def test_an_error_metric_is_normalised_towards_zero():
    tasks = {f"r{t}": REGRESSION for t in range(6)}
    rs = RecordSet(tasks=tasks)
    rng = np.random.default_rng(1)
    for t in range(6):
        for seed in range(3):
            rs.baseline(f"r{t}", seed, 0.2 + rng.normal(0, 0.01), train=0.9)
            for strategy, q in (("lp", 0.3), ("ft", 0.5)):
                rs.run("good", strategy, f"r{t}", seed, 0.2 + q + rng.normal(0, 0.02), train=0.9)
    stats, _ = statistics_of(rs)
    entries = stats.view("entries")
    assert entries.ranks.methods == ["good · ft", "good · lp"]
    assert entries.iqm["good · ft"][0] > entries.iqm["good · lp"][0] > 0


def test_report_writes_the_statistics_everywhere(tmp_path):
    directory = many_targets().write(tmp_path / "results")
    assert main(["report", str(directory), "--rope", "0.02"]) == 0
    summary = json.loads((directory / "summary.json").read_text())
    (task,) = summary["across_targets"]
    assert task["libraries"]["scikit-posthocs"] and task["libraries"]["baycomp"]
    assert task["rope"] == 0.02 and [v["view"] for v in task["views"]] == ["entries", "strategies", "sources"]
    entries = task["views"][0]
    assert entries["ranks"]["friedman"]["p"] < 0.05 and entries["ranks"]["nemenyi_cd"] > 0
    assert entries["ranks"]["bayesian_signed_rank"][0]["rope"] == 0.02
    assert set(entries["normalised_gain_iqm"]) == set(entries["methods"])
    assert set(entries["performance_profiles"]["methods"]) == set(entries["methods"])
    markdown = (directory / "leaderboard.md").read_text()
    assert "## Statistics across targets" in markdown and "Friedman χ²" in markdown
    page = (directory / "leaderboard.html").read_text()
    for kind in ("cd", "iqm", "profiles", "improvement"):
        assert f'id="{kind}-entries"' in page
        assert (directory / "figures" / f"{kind}-entries.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (directory / "figures" / f"{kind}-entries.svg").read_bytes()[:400]
    first = {p.name: p.read_bytes() for p in (directory / "figures").iterdir()}
    assert main(["report", str(directory), "--rope", "0.02"]) == 0
    assert {p.name: p.read_bytes() for p in (directory / "figures").iterdir()} == first  # reproducible bytes


def test_a_report_on_few_targets_says_no_test_was_run(tmp_path):
    directory = many_targets(n_targets=3).write(tmp_path / "results")
    report = build_report([directory], directory)
    # strategies are compared on 3 targets × 2 sources = 6 blocks; entries on 3 targets only
    assert "3 complete targets (fewer than 5): mean ranks only, no test" in report.markdown
    assert (directory / "figures" / "cd-strategies.png").exists()
    assert not (directory / "figures" / "cd-entries.png").exists()
    assert (directory / "figures" / "iqm-entries.png").exists()
    two = many_targets(n_targets=2, sources=(("good", 0.05),)).write(tmp_path / "two")
    assert "Statistics across targets" not in build_report([two], two).markdown  # the tables say it all
    assert not (two / "figures").exists()


def test_bad_rope_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--rope", "-1"])
    assert exit_info.value.code == 2
    assert "--rope" in capsys.readouterr().err


def test_nemenyi_tells_apart_exactly_the_pairs_further_apart_than_the_critical_difference():
    rng = np.random.default_rng(11)
    matrix = pd.DataFrame(rng.random((25, 6)) + np.linspace(0, 0.6, 6), columns=list("abcdef"))
    result = ranking.compare_ranks(matrix, rope=0.01, posthoc=ranking.NEMENYI)
    assert result.posthoc_pvalues is result.nemenyi
    for a in result.methods:
        for b in result.methods:
            if a != b:
                apart = abs(result.ranks[a] - result.ranks[b]) > result.cd
                assert (result.nemenyi.loc[a, b] < 0.05) == apart, (a, b)
    assert result.groups == ranking.groups(result.nemenyi, result.ranks)


def test_report_can_draw_its_groups_from_nemenyi(tmp_path):
    directory = many_targets().write(tmp_path / "results")
    assert main(["report", str(directory), "--posthoc", "nemenyi"]) == 0
    entries = json.loads((directory / "summary.json").read_text())["across_targets"][0]["views"][0]
    assert entries["ranks"]["posthoc"] == "nemenyi"
    assert "Groups: Nemenyi after Friedman." in (directory / "leaderboard.md").read_text()


def test_profiles_of_methods_not_drawn_have_no_band(monkeypatch):
    import tlbench.report.across as across

    monkeypatch.setattr(across, "PROFILE_BANDS", 3)
    stats, _ = statistics_of(many_targets())
    entries = stats.view("entries")
    top = sorted(entries.methods, key=lambda m: -entries.iqm[m][0])[:3]
    for method, (fraction, low, high) in entries.profiles.items():
        assert len(fraction) == len(entries.profile_taus)
        assert all(math.isnan(v) for v in low) != (method in top)


def test_a_method_run_on_few_targets_is_left_out_not_the_comparison():
    rs = many_targets(sources=(("good", 0.05),))
    rs.run("good", "rare", "t0", 0, 0.9, train=1.0)  # one run of another strategy on one target
    stats, _ = statistics_of(rs)
    entries = stats.view("entries")
    assert entries.ranks.n_blocks == 8 and entries.ranks.tested
    assert "good · rare" not in entries.methods and "good · rare" in entries.left_out
    assert any("left out" in note and "good · rare" in note for note in entries.notes)


def test_two_versions_of_one_source_are_two_methods_in_the_sources_view():
    rs = many_targets(sources=(("good", 0.05),))
    for t in range(8):  # the same source id, another configuration, on other strategies' runs
        for seed in range(3):
            rs.run("good", "lp2", f"t{t}", seed, 0.5, train=1.0)
    for record in rs.records.values():
        if record["spec"]["strategy"]["id"] == "lp2":
            record["spec"]["source"]["params"]["tag"] = "v2"
            record["spec"]["identity"]["source"]["params"]["tag"] = "v2"
    stats, _ = statistics_of(rs)
    sources = stats.view("sources")
    assert sources is not None and len(sources.methods + list(sources.left_out)) == 2
    assert all(name.startswith("good #") for name in sources.methods + list(sources.left_out))


def test_a_rope_of_zero_and_five_blocks_are_answered_not_crashed():
    stats, _ = statistics_of(many_targets(n_targets=5))
    entries = stats.view("entries")
    assert entries.ranks.tested and "smallest two-sided Wilcoxon p-value is 0.0625" in entries.ranks.note
    matrix = pd.DataFrame({"a": np.arange(8.0) + 1, "b": np.arange(8.0)})
    verdict = ranking.bayesian_signed_rank(matrix, "a", "b", rope=0.0)
    assert verdict.p_rope == 0.0 and verdict.p_left > 0.95


def test_an_unbounded_headline_has_no_default_rope_and_a_spread_scale():
    from dataclasses import replace

    rs = many_targets(n_targets=6, sources=(("good", 0.05),))
    frame = records_frame(list(rs.records.values()))
    cells = cell_table(frame)
    overall = overall_table(cells)
    (group,) = task_groups(cells, overall)
    unbounded = replace(group, metric=replace(group.metric, low=None, high=None))
    stats = across_targets(unbounded, frame)
    entries = stats.view("entries")
    assert stats.rope is None and entries.ranks.bayes == []
    assert any("--rope" in note for note in entries.notes)
    assert "spread" in entries.normalisation
    assert all(np.isfinite(v[0]) for v in entries.iqm.values())
    assert across_targets(group, frame).rope == pytest.approx(0.01)  # 1% of accuracy's range
