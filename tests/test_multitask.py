"""Multi-task learning: task groups in suites, the multi-task run kind, Δ and Δm against
single-task runs, and the report's rows and section."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tlbench.results.multitask import compare_with_single_task, relative_delta

SCENES = ('plugin = "digit-scenes"\nn_scenes = 90\nn_test = 30\nn_train = 24\nn_val = 12\ncanvas = 16\n'
          'max_scale = 10\nclasses = [0, 1, 7]\n')
MEMBERS = {"labels": "multilabel", "count": "regression", "pixels": "segmentation"}


def suite_text(weights: str, stl_lr: float = 1e-3, methods=("mtl-equal", "mtl-pcgrad"), sampling="shared",
               seeds=(0, 1), members=MEMBERS) -> str:
    text = textwrap.dedent(f"""
        [suite]
        name = "mtl"
        seeds = {list(seeds)}
        device = "cpu"

        [[sources]]
        id = "rn"
        plugin = "timm"
        model = "test_resnet"
        pretrained = true
        file = "{weights}"
        input_size = 16

        [baseline]
        plugin = "scratch"
        epochs = 2
        batch_size = 8
        """)
    for target, task in members.items():
        text += f'\n[[targets]]\nid = "{target}"\n{SCENES}task = "{task}"\n'
    text += f'\n[[groups]]\nid = "scenes"\ntasks = {json.dumps(list(members))}\nsampling = "{sampling}"\n'
    text += f'\n[[strategies]]\nplugin = "stl"\nepochs = 2\nbatch_size = 8\nlr = {stl_lr}\n'
    for method in methods:
        text += f'\n[[strategies]]\nplugin = "{method}"\nepochs = 2\nbatch_size = 8\n'
    return text


def task_specs(registry, name: str) -> list[dict]:
    return [spec.to_json() for spec in registry.get("task", name).item.metrics]


def delta_by_hand(registry, results: pd.DataFrame) -> dict[str, float]:
    """Δm of every multi-task run, recomputed from results.csv alone: each member row's
    test metrics against the same-seed stl row of its target, relative, signed by each
    metric's direction, averaged within the task, then over the tasks."""
    stl = results[results["strategy"] == "stl"].set_index(["target", "seed"])
    members = results[results["multitask_run_id"].notna()]
    out = {}
    for run_id, rows in members.groupby("multitask_run_id"):
        deltas = []
        for _, row in rows.iterrows():
            alone = stl.loc[(row["target"], row["seed"])]
            terms = []
            for spec in task_specs(registry, row["task"]):
                ours, theirs = row[f"test_{spec['name']}"], alone[f"test_{spec['name']}"]
                if pd.isna(ours) or pd.isna(theirs) or theirs == 0:
                    continue
                sign = 1 if spec["higher_is_better"] else -1
                terms.append(sign * (ours - theirs) / abs(theirs))
            deltas.append(sum(terms) / len(terms))
        out[run_id] = sum(deltas) / len(deltas)
    return out


def multitask_records(out: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((out / "multitask").glob("*.json"))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, resnet_file):
    """A multi-task suite run once, from the CLI: two seeds, three task types on shared
    inputs, stl, mtl-equal and mtl-pcgrad, and scratch."""
    from conftest import run_cli

    tmp = tmp_path_factory.mktemp("mtl")
    suite = tmp / "suite.toml"
    suite.write_text(suite_text(resnet_file), encoding="utf-8")
    env = {"TLBENCH_CACHE_DIR": str(tmp / "cache")}
    result = run_cli("run", str(suite), "--out", str(tmp / "out"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, suite, env, result


def test_the_suite_prints_per_task_delta_and_delta_m(finished):
    tmp, _, _, result = finished
    assert "Δm" in result.stderr  # each multi-task run's line
    board = (tmp / "out" / "leaderboard.md").read_text()
    section = board[board.index("## Multi-task learning"):]
    assert "Δm [95% CI]" in section and "Δ vs STL [95% CI]" in section and "tasks hurt" in section
    for target in MEMBERS:
        assert f"{target} ({MEMBERS[target]})" in section
    assert (tmp / "out" / "figures" / "multitask-0.png").stat().st_size > 1000
    html = (tmp / "out" / "leaderboard.html").read_text()
    assert 'id="multitask"' in html


def test_one_record_per_multitask_run_and_a_report_row_per_task(finished, registry):
    tmp = finished[0]
    records = multitask_records(tmp / "out")
    assert len(records) == 2 * 2  # two methods, two seeds
    for record in records:
        assert record["status"] == "ok" and set(record["tasks"]) == set(MEMBERS)
        assert [m["role"] for m in record["spec"]["members"]] == list(MEMBERS)
        assert all(m["single_task_run_id"] and m["baseline_run_id"] for m in record["spec"]["members"])
        for role, task in MEMBERS.items():
            headline = registry.get("task", task).item.headline
            assert record["metrics"][f"{role}/test_{headline}"] is not None
        hurt = sum(record["metrics"][f"{role}/delta"] < 0 for role in MEMBERS)
        assert record["metrics"]["tasks_hurt"] == hurt
    results = pd.read_csv(tmp / "out" / "results.csv")
    members = results[results["multitask_run_id"].notna()]
    assert len(members) == 4 * len(MEMBERS)
    # one leaderboard row per (source, target, strategy): a method's rows on a target are its seeds
    assert members.groupby(["target", "strategy"]).size().eq(2).all()


def test_delta_m_recomputed_from_results_csv_equals_the_reported_one(finished, registry):
    tmp = finished[0]
    results = pd.read_csv(tmp / "out" / "results.csv")
    by_hand = delta_by_hand(registry, results)
    records = {record["run_id"]: record for record in multitask_records(tmp / "out")}
    assert set(by_hand) == set(records)
    for run_id, value in by_hand.items():
        assert math.isclose(records[run_id]["metrics"]["delta_m"], value, rel_tol=1e-9, abs_tol=1e-12)
    members = results[results["multitask_run_id"].notna()]
    reported = members.drop_duplicates("multitask_run_id").set_index("multitask_run_id")["delta_m"]
    for run_id, value in by_hand.items():
        assert math.isclose(reported[run_id], value, rel_tol=1e-9, abs_tol=1e-12)
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    for row in summary["multitask"]:
        runs = members[members["strategy"] == row["strategy"]].drop_duplicates("multitask_run_id")
        assert math.isclose(row["delta_m"], sum(by_hand[r] for r in runs["multitask_run_id"]) / len(runs))


def test_tlbench_validate_derives_delta_m_again(finished, tmp_path):
    import shutil

    from conftest import run_cli
    from tlbench.results.records import seal

    tmp, _, env, _ = finished
    # the test's weights file is named by an absolute path, which validate notes; nothing else
    found = [line for line in run_cli("validate", str(tmp / "out"), env=env).stdout.splitlines()
             if "absolute path at" not in line]
    assert found == []
    copy = tmp_path / "out"
    shutil.copytree(tmp / "out", copy)
    path = sorted((copy / "multitask").glob("*.json"))[0]
    record = json.loads(path.read_text())
    record["metrics"]["delta_m"] += 0.01
    path.write_text(json.dumps(seal(record)))
    checked = run_cli("validate", str(copy), env=env)
    assert checked.returncode == 1
    assert f"{path.name}: metrics.delta_m is {record['metrics']['delta_m']!r}, but this record and its members' " \
           f"single-task runs give" in checked.stdout


def test_stl_baselines_are_the_ones_used(finished, tmp_path, resnet_file, registry):
    """Changing the single-task recipe changes Δm (the multi-task runs are redone against the
    new single-task runs); changing the multi-task run's own epoch-0 (first-epoch) metrics
    does not."""
    from conftest import run_cli

    from tlbench.report import build_report
    from tlbench.results.records import seal

    tmp, _, env, _ = finished
    before = {(r["spec"]["strategy"]["id"], r["spec"]["seed"]): r["metrics"]["delta_m"]
              for r in multitask_records(tmp / "out")}
    # epoch-0 metrics: edit every multi-task run's first evaluation; Δm in the report stays
    edited = tmp_path / "edited"
    import shutil

    shutil.copytree(tmp / "out", edited)
    for path in (edited / "multitask").glob("*.json"):
        record = json.loads(path.read_text())
        first = record["details"]["strategy"]["training"]["history"][0]
        for key in first:
            if key.startswith(("val_", "train_loss")):
                first[key] = 0.0 if first[key] is None else first[key] * 3 + 1
        path.write_text(json.dumps(seal(record)))
    build_report([edited], tmp_path / "report")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    original = json.loads((tmp / "out" / "summary.json").read_text())
    assert [row["delta_m"] for row in summary["multitask"]] == [row["delta_m"] for row in original["multitask"]]
    # the single-task recipe: another learning rate gives other STL runs, and other Δm
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(resnet_file, stl_lr=3e-2), encoding="utf-8")
    out = tmp_path / "out"
    shutil.copytree(tmp / "out", out)
    assert run_cli("run", str(suite), "--out", str(out), env=env).returncode == 0
    records = [r for r in multitask_records(out) if r["spec"]["identity"]["single_task"]["params"]["lr"] == 3e-2]
    after = {(r["spec"]["strategy"]["id"], r["spec"]["seed"]): r["metrics"]["delta_m"] for r in records}
    assert set(after) == set(before)
    assert all(after[key] != before[key] for key in before)
    results = pd.read_csv(out / "results.csv")
    new_stl = results["strategy"].ne("stl") | results["p_strategy_lr"].eq(3e-2)
    new_members = results["multitask_run_id"].isna() | results["multitask_run_id"].isin([r["run_id"] for r in records])
    by_hand = delta_by_hand(registry, results[new_stl & new_members])
    for record in records:
        assert math.isclose(by_hand[record["run_id"]], record["metrics"]["delta_m"], rel_tol=1e-9)


# ---------------------------------------------------------------------- Δ and Δm


TASK = {"name": "t", "headline": "acc", "metrics": [{"name": "acc", "higher_is_better": True},
                                                    {"name": "err", "higher_is_better": False}]}


def test_delta_averages_within_the_task_and_flips_lower_is_better():
    delta, used = relative_delta(TASK, {"test_acc": 0.6, "test_err": 2.0}, {"test_acc": 0.5, "test_err": 4.0})
    assert used == ["acc", "err"]
    assert delta == pytest.approx(((0.6 - 0.5) / 0.5 + (4.0 - 2.0) / 4.0) / 2)
    # a metric missing on one side, or whose single-task value is 0, is left out of the mean
    assert relative_delta(TASK, {"test_acc": 0.6, "test_err": 1.0}, {"test_acc": 0.5, "test_err": 0.0}) \
        == (pytest.approx(0.2), ["acc"])


def test_delta_m_is_the_mean_over_tasks_and_counts_the_tasks_hurt():
    tasks = {"a": TASK, "b": TASK}
    metrics = {"a/test_acc": 0.6, "a/test_err": 4.0, "b/test_acc": 0.4, "b/test_err": 4.0}
    stl = {"a": {"test_acc": 0.5, "test_err": 4.0}, "b": {"test_acc": 0.5, "test_err": 4.0}}
    out, account = compare_with_single_task(tasks, metrics, stl, {})
    assert out["a/delta"] == pytest.approx(0.1) and out["b/delta"] == pytest.approx(-0.1)
    assert out["delta_m"] == pytest.approx(0.0) and out["tasks_hurt"] == 1
    assert out["a/vs_single_task"] == pytest.approx(0.1) and out["a/negative_transfer"] is None
    # without every member's single-task run there is no Δm
    out, _ = compare_with_single_task(tasks, metrics, {"a": stl["a"]}, {})
    assert out["delta_m"] is None and out["b/delta"] is None


# ---------------------------------------------------------------------- planning


def test_task_groups_are_planned_as_multitask_runs_waiting_for_their_single_task_runs(write_suite, registry,
                                                                                     resnet_file, cache_dir):
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    planned = plan(load_suite(write_suite(suite_text(resnet_file)), registry), registry, log=lambda m: None)
    multitask = [spec for spec in planned.specs if spec.kind == "multitask"]
    assert len(multitask) == 2 * 2
    ids = {spec.run_id: spec for spec in planned.specs}
    for spec in multitask:
        assert spec.sampling == "shared" and spec.identity()["sampling"] == "shared"
        assert spec.identity()["single_task"]["plugin"] == "stl"
        for role, stl, scratch in spec.members:
            assert ids[stl].recipe.plugin == "stl" and ids[stl].target.id == role and ids[stl].seed == spec.seed
            assert ids[scratch].baseline and ids[scratch].target.id == role
            assert {stl, scratch} <= set(spec.depends_on)
    # the sampling is part of the group's identity
    other = plan(load_suite(write_suite(suite_text(resnet_file, sampling="round-robin"), "b.toml"), registry),
                 registry, log=lambda m: None)
    assert not {s.run_id for s in multitask} & {s.run_id for s in other.specs if s.kind == "multitask"}


def test_a_gradient_method_is_left_out_of_a_proportional_group(cli, write_suite, resnet_file):
    members = {"labels": "multilabel", "count": "regression"}
    result = cli("run", str(write_suite(suite_text(resnet_file, sampling="proportional", members=members))),
                 "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "mtl-pcgrad supports the samplings shared, round-robin; group scenes is sampled proportional" \
        in result.stdout + result.stderr


@pytest.mark.parametrize("group, message", [
    ('tasks = ["labels"]', "groups[0].tasks: expected a list of two or more distinct target ids"),
    ('tasks = ["labels", "nope"]', "groups[0].tasks[1]: no target with id 'nope'"),
    ('tasks = ["labels", "count"]\nsampling = "sometimes"', "groups[0].sampling: expected one of shared"),
    ('tasks = ["labels", "count"]\nlabelled = "labels"', "groups[0].labelled: a task group takes id, tasks"),
])
def test_bad_task_groups_get_one_line(cli, write_suite, resnet_file, group, message):
    text = suite_text(resnet_file, members={"labels": "multilabel", "count": "regression"})
    text = text[:text.index("[[groups]]")] + f'[[groups]]\nid = "scenes"\n{group}\n' \
        + text[text.index("[[strategies]]"):]
    result = cli("run", str(write_suite(text)), "--dry-run")
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_shared_group_with_different_examples_is_refused_before_anything_runs(cli, write_suite, resnet_file,
                                                                                tmp_path):
    text = suite_text(resnet_file, members={"labels": "multilabel", "count": "regression"})
    text = text.replace('task = "regression"\n', 'task = "regression"\nscene_seed = 5\n')
    result = cli("run", str(write_suite(text)), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "sampling 'shared' needs members with the same examples, but labels and count differ" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_multitask_strategy_without_a_task_group_is_left_out_with_a_reason(cli, write_suite, resnet_file):
    text = suite_text(resnet_file, members={"labels": "multilabel", "count": "regression"})
    text = text[:text.index("[[groups]]")] + text[text.index("[[strategies]]"):]
    result = cli("run", str(write_suite(text)), "--dry-run")
    assert result.returncode == 0
    assert "mtl-equal: trains on a task group; the suite has no [[groups]] entry with tasks = [...]" \
        in result.stdout + result.stderr


# ---------------------------------------------------------------------- a third-party multi-task strategy


class GeometricLoss:
    """A multi-task strategy as a third-party plugin writes one, with tlbench's public API
    only: the geometric mean of the tasks' losses (Chennupati et al. 2019)."""

    @staticmethod
    def make(drop_a_member: bool = False):
        from tlbench.api import SPLITS, FitResult, Requirements, Strategy
        from tlbench.training import ENGINE_PARAMS

        class Geometric(Strategy):
            name = "mtl-geometric"
            description = "multi-task learning on the geometric mean of the tasks' losses"
            requires = Requirements(tasks=None, multitask=True)
            compared_with = "stl"
            params = dict(ENGINE_PARAMS)

            def fit(self, params, run):
                import torch

                from tlbench.training import TaskGroup, count_params, multitask_model, param_groups, train

                group = TaskGroup(run, run.sampling)
                model = multitask_model(group)
                groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])

                def backward(step, losses):
                    logs = torch.stack([torch.log(loss + 1e-8) for loss in losses.values()])
                    total = torch.exp(logs.mean())
                    total.backward()
                    return total.detach()

                outcome = train(group, model, groups, params, backward=backward,
                                selection=group.selection(params, run.references))
                predicted = {split: group.predict(model, split, params) for split in SPLITS}
                by_role = {role: {split: predicted[split][role] for split in SPLITS} for role in group.members}
                if drop_a_member:
                    by_role.popitem()
                trainable, total = count_params(model)
                return FitResult(predictions=by_role[run.scored_role], trainable_params=trainable,
                                 total_params=total, info={"training": outcome.to_json()},
                                 role_predictions={r: p for r, p in by_role.items() if r != run.scored_role},
                                 selection=outcome.selection)

        return Geometric()


SCENE_PARAMS = {"n_scenes": 90, "n_test": 30, "n_train": 24, "n_val": 12, "canvas": 16, "max_scale": 10,
                "classes": [0, 1, 7]}


@pytest.mark.parametrize("sampling", ["shared", "round-robin", "proportional"])
def test_the_conformance_kit_covers_a_third_party_multitask_strategy(cache_dir, sampling):
    from tlbench.testing import check_strategy

    members = {"labels": ("digit-scenes", {**SCENE_PARAMS, "task": "multilabel"}),
               "count": ("digit-scenes", {**SCENE_PARAMS, "task": "regression"})}
    check = check_strategy(GeometricLoss.make(), {"epochs": 2, "batch_size": 8}, targets=members,
                           sampling=sampling, cache_dir=cache_dir)
    record = check.record
    assert record["kind"] == "multitask" and set(record["tasks"]) == {"labels", "count"}
    assert record["metrics"]["labels/test_mAP"] is not None and record["metrics"]["count/test_r2"] is not None
    assert record["spec"]["sampling"] == sampling
    assert check.changed_params > 0  # the shared backbone trained


def test_the_conformance_kit_fails_a_multitask_strategy_that_skips_a_member(cache_dir):
    from tlbench.testing import check_strategy

    members = {"labels": ("digit-scenes", {**SCENE_PARAMS, "task": "multilabel"}),
               "count": ("digit-scenes", {**SCENE_PARAMS, "task": "regression"})}
    with pytest.raises(AssertionError, match="returned no predictions for member 'count'"):
        check_strategy(GeometricLoss.make(drop_a_member=True), {"epochs": 1, "batch_size": 8}, targets=members,
                       cache_dir=cache_dir, withheld_labels_unseen=False, protocol=False)


def test_look_alike_groups_are_kept_apart_in_a_merged_report(finished, tmp_path, resnet_file):
    """Two suites' groups of one name but other members (another training size) are two
    groups in the multi-task section, never pooled."""
    from conftest import run_cli

    from tlbench.report import build_report

    tmp, _, env, _ = finished
    other = tmp_path / "other.toml"
    other.write_text(suite_text(resnet_file, methods=("mtl-equal",), seeds=(0,)).replace("n_train = 24", "n_train = 20"),
                     encoding="utf-8")
    assert run_cli("run", str(other), "--out", str(tmp_path / "other"), env=env).returncode == 0
    build_report([tmp / "out", tmp_path / "other"], tmp_path / "report")
    rows = json.loads((tmp_path / "report" / "summary.json").read_text())["multitask"]
    equal = [row for row in rows if row["strategy"] == "mtl-equal"]
    assert len({row["group_identity"] for row in equal}) == 2
    assert sorted(row["seeds"] for row in equal if row["target"].startswith("labels")) == [1, 2]


def test_a_group_trains_lora_adapters_and_leaves_the_pretrained_weights(cache_dir):
    """backbone = 'lora' on a task group: the adapters and heads train, no pretrained weight
    of the shared backbone changes."""
    from tlbench.testing import check_strategy

    members = {"labels": ("digit-scenes", {**SCENE_PARAMS, "task": "multilabel"}),
               "count": ("digit-scenes", {**SCENE_PARAMS, "task": "regression"})}
    params = {"epochs": 2, "batch_size": 8, "backbone": "lora", "lora_rank": 2, "lora_target_modules": ["proj"]}
    check = check_strategy("mtl-equal", params, targets=members, sampling="shared", cache_dir=cache_dir,
                           protocol=False)
    resolved = check.record["details"]["strategy"]["resolved"]
    assert resolved["backbone"] == "lora" and resolved["adapted_layers"] >= 1
    assert check.changed == {}
    assert 0 < check.result.trainable_params < check.backbone_params


def test_lora_parameters_without_backbone_lora_are_refused(cli, write_suite, resnet_file):
    text = suite_text(resnet_file, members={"labels": "multilabel", "count": "regression"})
    text = text.replace('plugin = "mtl-equal"\n', 'plugin = "mtl-equal"\nlora_rank = 4\n')
    result = cli("run", str(write_suite(text)), "--dry-run")
    assert result.returncode == 2 and "mtl-equal: lora_rank applies to backbone 'lora' only" in result.stderr
