"""Record directories written by tlbench 0.1 (schema 1: classification by accuracy, no
task field) still validate, report and merge, with the same numbers, and the same
runs planned today keep their run ids.

`tests/data/records-v1/` holds 15 records of tlbench 0.1's quickstart suite (seeds
0-2) as tlbench 0.1 wrote them, and that suite file.
"""

from __future__ import annotations

import json
import shutil

from conftest import REPO

V1 = REPO / "tests" / "data" / "records-v1"


def v1_records() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((V1 / "runs").glob("*.json"))]


def test_schema_1_records_validate_as_classification():
    from tlbench.results.records import task_of, validate_record

    records = v1_records()
    assert len(records) == 15 and all(r["schema_version"] == 1 and "task" not in r for r in records)
    assert all(validate_record(r) == [] for r in records)
    assert {task_of(r)["headline"] for r in records} == {"accuracy"}


def test_schema_1_directories_report_and_merge_with_their_numbers(cli, tmp_path):
    report = cli("report", str(V1), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "| test acc (mean ± std)" in report.stdout  # the leaderboard of tlbench 0.1
    rows = {(r["source"], r["strategy"], r["seed"]): r
            for r in __import__("pandas").read_csv(tmp_path / "report" / "results.csv").to_dict("records")}
    for record in v1_records():
        spec = record["spec"]
        source = f"{spec['source']['id']} (from scratch)" if spec["baseline"] else spec["source"]["id"]
        row = rows[(source, spec["strategy"]["id"], spec["seed"])]
        assert row["test_accuracy"] == record["metrics"]["test_accuracy"] == row["headline_test"]
        if record["metrics"]["negative_transfer"] is not None:
            assert abs(row["negative_transfer"] - record["metrics"]["negative_transfer"]) < 1e-12

    other = tmp_path / "other"
    shutil.copytree(V1, other)
    merged = cli("merge", str(V1), str(other), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    assert len(list((tmp_path / "merged" / "runs").glob("*.json"))) == 15
    kept = json.loads(next((tmp_path / "merged" / "runs").glob("*.json")).read_text())
    assert kept["schema_version"] == 1  # merged as they were, never rewritten


def test_the_same_runs_planned_today_keep_their_run_ids(registry, cache_dir):
    """Planning 0.1's quickstart today gives its classification runs the ids tlbench 0.1
    gave them (planning reads the digits and hashes the pretraining data; it trains
    nothing), so its records are found as done and nothing is rerun. Its baselines keep
    theirs too: the suite combines no plugins, so its sources' own plugin defines them.
    What may differ is what a plugin changes when it bumps its version because its
    results change: its version, and for a source its parameters' defaults and
    fingerprint (`pretrain` 2 pretrains once per seed, on the device it names). Those
    runs are redone, planned with the same target, strategy and seed."""
    from tlbench.hashing import config_hash
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    planned = {spec.run_id: spec for spec in plan(load_suite(V1 / "suite.toml", registry),
                                                   registry, log=lambda message: None).specs}
    same_identity = 0
    for record in v1_records():
        identity = record["spec"]["identity"]
        version = {part: registry.get(part, identity[part]["plugin"]).version
                   for part in ("source", "target", "strategy")}
        if identity["init"] != "random" and version["source"] != identity["source"]["version"]:
            same_run = [spec for spec in planned.values()
                        if (spec.source.id, spec.target.id, spec.recipe.id, spec.seed, spec.baseline)
                        == (record["spec"]["source"]["id"], record["spec"]["target"]["id"],
                            record["spec"]["strategy"]["id"], record["spec"]["seed"], False)]
            assert len(same_run) == 1 and same_run[0].run_id != record["run_id"], identity
            continue
        today = {**identity, **{part: {**identity[part], "version": version[part]} for part in version}}
        run_id = config_hash(today, len(record["run_id"]))
        assert run_id in planned, identity
        assert planned[run_id].identity() == today
        if today == identity:
            assert run_id == record["run_id"]
        same_identity += 1
    assert same_identity == 3  # the baselines (seeds 0-2): random initialisation, no pretraining
