"""The selection protocol and sweeps: grids in suites, trials on validation, the choice,
finals retrained with every seed, resume, and test labels that never reach a choice."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import pytest

from test_report_browser import browser, column_texts, header_index, opened  # noqa: F401  (fixture)

from tlbench.errors import SuiteError
from tlbench.plan.matrix import expand, identify
from tlbench.plan.search import cell_key, choose, choose_finals
from tlbench.plan.suite import load_suite

HEAD = """
[suite]
name = "search"
seeds = [0, 1]
device = "cpu"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 16

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1, 2]
shots = 4
val_shots = 3
"""

TUNED = HEAD + """
[[strategies]]
id = "lp"
plugin = "linear-probe"
[strategies.search]
l2_grid = [[1e-4], [1e-2], [1.0]]

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 8
[strategies.search]
lr = [1e-2, 1e-3]

[baseline]
plugin = "full-finetune"
epochs = 2
batch_size = 8
[baseline.search]
lr = [1e-2, 3e-3, 1e-3]
"""


def _planned(suite, registry):
    planned = expand(suite, registry)
    seeds = suite.all_seeds
    hashes = {(t.id, seed): f"hash-{t.id}-{seed}" for t in suite.targets for seed in seeds}
    return identify(planned, hashes, {s.id: f"fp-{s.id}" for s in suite.sources})


# ---------------------------------------------------------------------- suites


def test_a_search_is_the_product_of_its_lists_and_a_list_valued_parameter_takes_a_list_of_lists(write_suite,
                                                                                                 registry):
    suite = load_suite(write_suite(TUNED), registry)
    lp, ft = suite.strategies[:2]
    assert [c["l2_grid"] for c in lp.configurations()] == [[1e-4], [1e-2], [1.0]]
    assert [c["lr"] for c in ft.configurations()] == [1e-2, 1e-3]
    assert all(c["epochs"] == 2 for c in ft.configurations())
    assert len(suite.baseline.configurations()) == 3
    assert suite.search_seeds == (0,) and suite.refit == "train+val"


@pytest.mark.parametrize("body, message", [
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.search]\nlrr = [1e-3]\n", "search.lrr: unknown parameter"),
    ("[[strategies]]\nplugin = \"full-finetune\"\nlr = 1e-3\n[strategies.search]\nlr = [1e-3]\n",
     "also given as a value"),
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.search]\nlr = []\n", "non-empty list"),
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.search]\nlr = [1e-3, 1e-3]\n", "given twice"),
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.search]\nlr = [-1.0]\n", r"search\.lr\[0\]: expected a number"),
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.search]\nnum_workers = [0, 1]\n",
     "an execution setting"),
    ("[[strategies]]\nplugin = \"full-finetune\"\n[strategies.sweep]\nlr = [1e-3]\nepochs = [1, 2]\n",
     "a sweep varies one parameter"),
])
def test_mistakes_in_lists_are_one_line_naming_the_key(write_suite, registry, body, message):
    with pytest.raises(SuiteError, match=message) as caught:
        load_suite(write_suite(HEAD + body), registry)
    assert "\n" not in str(caught.value)


def test_only_strategies_search_and_sources_or_targets_sweep(write_suite, registry):
    text = HEAD.replace('val_shots = 3\n', 'val_shots = 3\n[targets.search]\nshots = [2, 4]\n') + \
        '[[strategies]]\nplugin = "linear-probe"\n'
    with pytest.raises(SuiteError, match=r"targets\[0\]\.search: only a strategy .* \[targets\.sweep\]"):
        load_suite(write_suite(text), registry)


def test_a_sweep_is_one_entry_per_value(write_suite, registry):
    text = HEAD.replace('shots = 4\n', '').replace('val_shots = 3\n', 'val_shots = 3\n[targets.sweep]\n'
                                                                      'shots = [2, 4, 8]\n')
    suite = load_suite(write_suite(text + '[[strategies]]\nplugin = "linear-probe"\n'), registry)
    assert [t.id for t in suite.targets] == ["d[shots=2]", "d[shots=4]", "d[shots=8]"]
    assert [t.params["shots"] for t in suite.targets] == [2, 4, 8]
    assert suite.targets[1].to_json()["sweep"] == {"family": "d", "param": "shots", "value": 4}


def test_the_baseline_is_tuned_at_least_as_much_as_the_strategies(write_suite, registry):
    untuned_baseline = TUNED[:TUNED.index("[baseline]")]
    suite = load_suite(write_suite(untuned_baseline.replace("l2_grid = [[1e-4], [1e-2], [1.0]]",
                                                            "l2_grid = [[1e-4], [1e-2]]")), registry)
    # without a search of its own, the baseline searches what the strategies search of its parameters
    assert dict(suite.baseline.search) == {"lr": (1e-2, 1e-3)}
    with pytest.raises(SuiteError, match="fewer than strategy 'lp''s 3"):
        load_suite(write_suite(untuned_baseline), registry)
    short = TUNED.replace("[baseline]\nplugin = \"full-finetune\"\nepochs = 2", "[baseline]\nplugin = "
                                                                              "\"full-finetune\"\nepochs = 1")
    with pytest.raises(SuiteError, match="trains at most 1 epochs, fewer than tuned strategy 'ft''s 2"):
        load_suite(write_suite(short), registry)


# ---------------------------------------------------------------------- the plan


def test_trials_run_each_configuration_at_the_search_seeds_and_finals_wait_for_them(write_suite, registry):
    suite = load_suite(write_suite(TUNED), registry)
    planned = _planned(suite, registry)
    trials = [s for s in planned.specs if s.kind == "trial"]
    assert len(trials) == 3 + 2 + 3 and {s.seed for s in trials} == {0}
    assert len({s.run_id for s in trials}) == len(trials)
    # every run waits: finals for their choice, the rest for the searched baseline
    assert not [s for s in planned.specs if s.kind == "run"]
    assert len(planned.finals) == (2 + 1) * 2
    assert all(f.search["space"] and f.search["refit"] == "train+val" and f.search["seeds"] == [0]
               for f in planned.finals)
    assert all(not s.search for s in trials)  # a trial is the same computation whatever the grid it is in


def test_with_refit_on_train_val_every_run_of_the_suite_refits_so_all_train_on_the_same_data(write_suite,
                                                                                             registry):
    text = TUNED.replace("[baseline]", '[[strategies]]\nid = "plain"\nplugin = "full-finetune"\nepochs = 2\n\n'
                                       '[baseline]')
    planned = _planned(load_suite(write_suite(text), registry), registry)
    plain = [s for s in planned.deferred if s.recipe.id == "plain"]
    assert len(plain) == 2 and all(s.search == {"space": {}, "refit": "train+val", "seeds": [0]} for s in plain)
    train_only = _planned(load_suite(write_suite(text.replace('device = "cpu"', 'device = "cpu"\nrefit = "train"')),
                                     registry), registry)
    assert all(s.search is None for s in train_only.deferred if s.recipe.id == "plain")


def test_a_trial_is_shared_by_every_search_that_holds_its_configuration(write_suite, registry):
    one = _planned(load_suite(write_suite(TUNED), registry), registry)
    wider = _planned(load_suite(write_suite(TUNED.replace("lr = [1e-2, 1e-3]", "lr = [1e-2, 1e-3, 1e-4]")),
                                registry), registry)
    ids = lambda p: {s.run_id for s in p.specs if s.kind == "trial"}  # noqa: E731
    assert ids(one) < ids(wider)


def _record(spec, status="ok", val=None, trainable=100, steps=10):
    metrics = {"val_accuracy": val, "trainable_params": trainable}
    return {"run_id": spec.run_id, "status": status, "metrics": metrics,
            "details": {"strategy": {"training": {"steps": steps}}}}


def test_the_choice_is_the_best_validation_score_ties_go_to_the_cheaper_then_the_first(write_suite, registry):
    suite = load_suite(write_suite(TUNED), registry)
    planned = _planned(suite, registry)
    final = next(f for f in planned.finals if f.recipe.id == "ft")
    trials = [s for s in planned.specs if s.kind == "trial" and cell_key(s) == cell_key(final)]
    assert [t.recipe.params["lr"] for t in trials] == [1e-2, 1e-3]
    records = {trials[0].run_id: _record(trials[0], val=0.5), trials[1].run_id: _record(trials[1], val=0.7)}
    assert choose(final, trials, records).params == {"lr": 1e-3}
    records[trials[0].run_id] = _record(trials[0], val=0.7, steps=5)  # a tie: the cheaper wins
    assert choose(final, trials, records).params == {"lr": 1e-2}
    records[trials[0].run_id] = _record(trials[0], val=0.7, steps=10)  # equal cost: the first written
    assert choose(final, trials, records).params == {"lr": 1e-2}
    records[trials[0].run_id] = _record(trials[0], status="error", val=0.9)  # a failed trial is not eligible
    choice = choose(final, trials, records)
    assert choice.params == {"lr": 1e-3} and choice.tuned["n_trials"] == 2
    nothing = choose(final, trials, {})
    assert nothing.params is None and "no configuration" in nothing.problem


def test_with_several_search_seeds_a_configuration_scores_its_mean_and_needs_every_seed(write_suite, registry):
    suite = load_suite(write_suite(TUNED.replace('device = "cpu"', 'device = "cpu"\nsearch_seeds = [0, 5]')), registry)
    assert suite.all_seeds == (0, 1, 5)
    planned = _planned(suite, registry)
    final = next(f for f in planned.finals if f.recipe.id == "ft")
    trials = [s for s in planned.specs if s.kind == "trial" and cell_key(s) == cell_key(final)]
    assert [(t.recipe.params["lr"], t.seed) for t in trials] == [(1e-2, 0), (1e-2, 5), (1e-3, 0), (1e-3, 5)]
    vals = {(1e-2, 0): 0.9, (1e-2, 5): 0.3, (1e-3, 0): 0.6, (1e-3, 5): 0.7}
    records = {t.run_id: _record(t, val=vals[(t.recipe.params["lr"], t.seed)]) for t in trials}
    choice = choose(final, trials, records)
    assert choice.params == {"lr": 1e-3} and choice.tuned["score"] == pytest.approx(0.65)
    records[trials[3].run_id] = _record(trials[3], status="timeout")  # lr=1e-3 lacks a seed now
    assert choose(final, trials, records).params == {"lr": 1e-2}


def test_a_search_needs_a_validation_split(cli, write_suite):
    result = cli("run", str(write_suite(TUNED.replace("val_shots = 3", "val_shots = 0"))), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("choose their configurations on validation (give the target a val "
                                          "split, e.g. val_shots)")
    assert "targets[0]" in result.stderr and "seed 0" in result.stderr


def test_finals_take_the_choice_and_the_runs_that_waited_are_paired_with_the_tuned_baseline(write_suite,
                                                                                            registry):
    suite = load_suite(write_suite(TUNED), registry)
    planned = _planned(suite, registry)
    records = {s.run_id: _record(s, val=s.recipe.params.get("lr", 0.1)) for s in planned.specs if s.kind == "trial"}
    ready, problems = choose_finals(planned, records)
    assert not problems and not planned.waiting
    baselines = {s.seed: s for s in ready if s.baseline}
    assert {b.recipe.params["lr"] for b in baselines.values()} == {1e-2}  # the highest "val" in these records
    for spec in ready:
        assert spec.search is not None and spec.tuned["chosen"]
        if not spec.baseline:
            assert spec.baseline_run_id == baselines[spec.seed].run_id
            assert spec.depends_on == (baselines[spec.seed].run_id,)
    # the protocol is part of a final's identity: another refit is another run
    other = replace(ready[0], search={**ready[0].search, "refit": "train"})
    assert other.run_id != ready[0].run_id


# ---------------------------------------------------------------------- running it

PERMUTED_PLUGIN = '''
"""`digits` whose test labels can be permuted (what no trial or choice may notice)."""

import numpy as np

import tlbench
from tlbench.api import Split, Splits
from tlbench.params import Param
from tlbench_builtin.digits import Digits


class TestPermutedDigits(Digits):
    name = "test-permuted-digits"
    params = {**Digits.params, "permute_test": Param(bool, False, "")}

    def load(self, params, env):
        data = super().load({k: v for k, v in params.items() if k != "permute_test"}, env)
        if params["permute_test"]:
            splits = data.splits

            def permuted(seed):
                s = splits(seed)
                labels = np.random.default_rng(7).permutation(s.test.labels)
                return Splits(s.train, s.val, Split(s.test.examples, labels))

            data.splits = permuted
        return data


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(TestPermutedDigits())
'''

def run_suite(permute: str) -> str:
    """`TUNED` on `test-permuted-digits`, its test labels permuted or not."""
    return (TUNED.replace('name = "search"', 'name = "search-run"\nplugins = ["permuted_plugin"]')
            .replace('plugin = "digits"', 'plugin = "test-permuted-digits"')
            .replace("val_shots = 3\n", f"val_shots = 3\npermute_test = {permute}\n", 1))


def _records(out, folder):
    return [json.loads(p.read_text()) for p in sorted((out / folder).glob("*.json"))]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("search")
    (root / "permuted_plugin.py").write_text(textwrap.dedent(PERMUTED_PLUGIN), encoding="utf-8")
    outs = {}
    for permute in ("false", "true"):
        suite = root / f"suite-{permute}.toml"
        suite.write_text(run_suite(permute), encoding="utf-8")
        out = root / f"out-{permute}"
        result = run_cli("run", str(suite), "--out", str(out), "--jobs", "2",
                         env={"TLBENCH_CACHE_DIR": str(root / "cache")})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outs[permute] = (suite, out, result)
    return root, outs


def test_trials_are_scored_on_validation_and_never_given_a_test_split(searched):
    _, outs = searched
    _, out, result = outs["false"]
    trials = _records(out, "trials")
    assert len(trials) == 3 + 2 + 3
    for trial in trials:
        assert trial["kind"] == "trial" and trial["status"] == "ok"
        assert trial["metrics"]["n_test"] == 0 and trial["metrics"]["test_accuracy"] is None
        assert trial["metrics"]["val_accuracy"] is not None and trial["metrics"]["n_val"] == 9
    finals = _records(out, "runs")
    assert len(finals) == 3 * 2
    for final in finals:
        search = final["spec"]["search"]
        assert search["refit"] == "train+val" and search["chosen"]
        # refit on train+val: 12 + 9 training examples, no validation split left
        assert final["metrics"]["n_train"] == 21 and final["metrics"]["n_val"] == 0
        assert final["metrics"]["test_accuracy"] is not None
    assert "searches chose their configurations" in result.stderr


def test_permuting_the_test_labels_changes_only_test_metrics(searched):
    _, outs = searched
    plain, permuted = (outs[key][1] for key in ("false", "true"))
    val = lambda out: sorted((t["spec"]["strategy"]["id"], t["metrics"]["val_accuracy"])  # noqa: E731
                             for t in _records(out, "trials"))
    assert val(plain) == val(permuted)

    def finals(out):
        return {(f["spec"]["strategy"]["id"], f["spec"]["seed"]): f for f in _records(out, "runs")}

    a, b = finals(plain), finals(permuted)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["spec"]["search"]["chosen"] == b[key]["spec"]["search"]["chosen"]
        assert a[key]["metrics"]["train_accuracy"] == b[key]["metrics"]["train_accuracy"]
    assert any(a[key]["metrics"]["test_accuracy"] != b[key]["metrics"]["test_accuracy"] for key in a)


def test_resuming_a_search_redoes_nothing_recorded(searched):
    from conftest import run_cli

    root, outs = searched
    suite, out, _ = outs["false"]
    finals = _records(out, "runs")
    # a half-finished search: one trial and one final lost
    (out / "trials" / f"{_records(out, 'trials')[0]['run_id']}.json").unlink()
    (out / "runs" / f"{finals[0]['run_id']}.json").unlink()
    result = run_cli("run", str(suite), "--out", str(out), "--jobs", "1",
                     env={"TLBENCH_CACHE_DIR": str(root / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 run to do" in result.stderr and result.stderr.count("[1/1]") == 2
    again = run_cli("run", str(suite), "--out", str(out), env={"TLBENCH_CACHE_DIR": str(root / "cache")})
    assert again.returncode == 0 and "to do" not in again.stderr


def test_the_report_lists_each_tuned_cell_with_its_choice_and_trials(searched):
    _, outs = searched
    _, out, result = outs["false"]
    text = (out / "leaderboard.md").read_text()
    assert "## Tuned cells" in text
    summary = json.loads((out / "summary.json").read_text())
    tuned = {(row["source"], row["strategy"]): row for row in summary["tuned"]}
    assert set(tuned) == {("rn", "lp"), ("rn", "ft"), ("rn (from scratch)", "scratch-full-finetune")}
    ft = tuned[("rn", "ft")]
    assert ft["trials"] == 2 and ft["refit"] == "train+val" and ft["chosen"].startswith("lr=")
    assert len(ft["expected_max"]) == 2 and ft["expected_max"][0] <= ft["expected_max"][1]
    assert (out / "figures" / "search-0.png").is_file()
    # the leaderboard keeps one row per entry: tuned finals, not trials
    assert "lp[l2_grid" not in text.split("## Tuned cells")[0]


def test_the_tuned_cells_show_in_a_browser_and_sort(searched, browser):  # noqa: F811
    _, outs = searched
    _, out, _ = outs["false"]
    page, _, requests, errors, dialogs = opened(browser, out / "leaderboard.html")
    assert errors == [] and dialogs == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert page.locator("#tuned h2").inner_text() == "Tuned cells"
    assert page.locator("#tuned-0 tbody tr").count() == 3
    index = header_index(page, "tuned-0", "spread")
    page.locator("#tuned-0 thead th").nth(index).locator("button").click()
    values = [float(v) for v in column_texts(page, "tuned-0", index)]
    assert values == sorted(values)
    complete, width = page.eval_on_selector("#search-0 img", "i => [i.complete, i.naturalWidth]")
    assert complete and width > 100


def test_the_dry_run_lists_trials_and_finals_with_the_cost_of_the_protocol(searched):
    from conftest import run_cli

    root, outs = searched
    suite, _, _ = outs["false"]
    result = run_cli("run", str(suite), "--dry-run", "--out", str(root / "dry"),
                     env={"TLBENCH_CACHE_DIR": str(root / "cache")})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("trial") for line in lines) == 8
    assert sum(line.startswith("final") for line in lines) == 4
    assert "search: 8 trials then 6 finals, (trials + finals) / finals = 2.3×" in result.stdout


def test_the_tuned_vision_suite_lists_its_trials_and_finals_offline(cli, tmp_path):
    from conftest import REPO

    no_network = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": ""}
    done = cli("run", str(REPO / "suites" / "vision-tuned.toml"), "--dry-run", "--out", str(tmp_path / "out"),
               env=no_network)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # 3 sources × 5 targets × (8 probe + 40 fine-tuning) configurations + 3 networks × 5 targets × 40 scratch
    assert sum(line.startswith("trial") for line in lines) == 15 * 48 + 15 * 40
    assert sum(line.startswith("final") for line in lines) == 15 * 2 * 5
    assert lines[-1].startswith("search: 1320 trials then 225 finals")
    assert not (tmp_path / "out").exists()


SWEEP = """
[suite]
name = "sweep-run"
seeds = [0, 1]
device = "cpu"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 16

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1, 2]
val_shots = 2
[targets.sweep]
shots = [2, 4, 8]

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "pf"
plugin = "partial-finetune"
epochs = 1
batch_size = 8
[strategies.sweep]
train_last = [1, 2]

[baseline]
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""


def test_sweeps_are_reported_as_learning_curves_and_strategy_axes(cli, write_suite, tmp_path, browser):  # noqa: F811
    import pandas as pd

    from tlbench.report.curves import effective_data_transferred

    out = tmp_path / "out"
    result = cli("run", str(write_suite(SWEEP)), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "leaderboard.md").read_text()
    assert "### Learning curves" in text and "### Strategy parameters" in text
    summary = json.loads((out / "summary.json").read_text())
    curves = pd.DataFrame(summary["sweeps"]["learning_curves"])
    assert set(curves["value"]) == {2.0, 4.0, 8.0}
    assert sorted(curves["strategy"].unique()) == ["lp", "pf[train_last=1]", "pf[train_last=2]",
                                                   "scratch-full-finetune"]
    assert set(curves["n_train"]) == {6.0, 12.0, 24.0}
    entries = curves[~curves["baseline"]]
    assert entries["gain"].notna().all() and "crossover" in entries
    # the data transferred, recomputed from results.csv by hand
    runs = pd.read_csv(out / "results.csv")
    scratch = runs[runs["baseline"]].groupby("n_train")["test_accuracy"].mean()
    probe = entries[(entries["strategy"] == "lp") & (entries["value"] == 4.0)].iloc[0]
    tuned = runs[(runs["strategy"] == "lp") & (runs["n_train"] == 12)]["test_accuracy"].mean()
    expected = effective_data_transferred(scratch.index.to_numpy(), 1 - scratch.to_numpy(), 12.0, 1 - tuned)
    for key in ("d_t", "multiplier"):
        if expected[key] is None:
            assert pd.isna(probe[key])
        else:
            assert probe[key] == pytest.approx(expected[key])
    depth = pd.DataFrame(summary["sweeps"]["strategy_axes"])
    assert set(depth["value"]) == {"1", "2"} and set(depth["family"]) == {"pf"}
    assert len(depth) == 2 * 3 and depth["gap"].notna().all()
    for name in ("curve-0", "depth-0"):
        assert (out / "figures" / f"{name}.png").is_file() and (out / "figures" / f"{name}.svg").is_file()
    page, _, requests, errors, dialogs = opened(browser, out / "leaderboard.html")
    assert errors == [] and dialogs == [] and all(url.startswith(("file:", "data:")) for url in requests)
    for name in ("curve-0", "depth-0"):
        complete, width = page.eval_on_selector(f"#{name} img", "i => [i.complete, i.naturalWidth]")
        assert complete and width > 100
    assert page.locator("#sweeps table").count() == 2


def test_trials_and_finals_cross_process_boundaries_as_they_are(write_suite, registry):
    """Executors send specs to workers as JSON (Ray, local processes): a trial and a final
    come back with the same identity, protocol and account."""
    from tlbench.plan.matrix import RunSpec

    text = TUNED.replace('id = "d"\nplugin = "digits"\nclasses = [0, 1, 2]\nshots = 4\nval_shots = 3\n',
                         'id = "d"\nplugin = "digits"\nclasses = [0, 1, 2]\nval_shots = 3\n'
                         '[targets.sweep]\nshots = [2, 4]\n')
    suite = load_suite(write_suite(text), registry)
    planned = _planned(suite, registry)
    records = {s.run_id: _record(s, val=0.5) for s in planned.specs if s.kind == "trial"}
    finals, _ = choose_finals(planned, records)
    for spec in [next(s for s in planned.specs if s.kind == "trial"), *finals[:2]]:
        again = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
        assert again == spec and again.run_id == spec.run_id
        assert again.target.sweep == ("d", "shots", again.target.params["shots"])
