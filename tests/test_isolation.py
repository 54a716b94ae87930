"""Isolation: a run that raises, crashes, hangs or hoards memory ends only itself.

One suite holds a well-behaved strategy and one strategy per way of failing (see
plugins_misbehaving.py); the real `tlbench run` executes it with worker processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import RANDOM_RESNET, THREE_DIGITS, run_cli

TESTS = Path(__file__).resolve().parent

SUITE = """
[suite]
name = "isolation"
seeds = [0]
device = "cpu"
time_budget_s = {budget}
memory_budget_mb = 1800
plugins = ["plugins_misbehaving"]

[baseline]
enabled = false
""" + RANDOM_RESNET + THREE_DIGITS

CRASHES = """
[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
plugin = "raises"

[[strategies]]
plugin = "exits"

[[strategies]]
plugin = "hogs"
mb = 2500

[[strategies]]
plugin = "cuda-oom"
"""

HANGS = """
[[strategies]]
plugin = "sleeps"

[[strategies]]
plugin = "loops"
"""
# Hangs get a short budget of their own, so the well-behaved run never races it on a
# busy machine; 10 s leaves time to report an evaluation before the budget is up.
HANG_BUDGET = 10

PLUGIN_ENV = {"PYTHONPATH": str(TESTS)}


def records_by_strategy(out: Path) -> dict[str, dict]:
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    return {r["spec"]["strategy"]["id"]: r for r in records}


@pytest.fixture(scope="module")
def isolation_run(tmp_path_factory):
    """Both suites into one result directory, as two invocations of `tlbench run`."""
    root = tmp_path_factory.mktemp("isolation")
    out = root / "out"
    env = {**PLUGIN_ENV, "TLBENCH_CACHE_DIR": str(root / "cache")}
    results = []
    for name, budget, strategies in (("crashes", 600, CRASHES), ("hangs", HANG_BUDGET, HANGS)):
        suite = root / f"{name}.toml"
        suite.write_text(SUITE.format(budget=budget) + strategies, encoding="utf-8")
        results.append(run_cli("run", str(suite), "--out", str(out), "--jobs", "2", env=env))
    return root, out, env, results


def test_each_failure_gets_its_status_and_the_rest_run(isolation_run):
    _, out, _, results = isolation_run
    for result in results:
        assert result.returncode == 1, result.stderr[-3000:]
    records = records_by_strategy(out)
    assert set(records) == {"lp", "raises", "exits", "sleeps", "loops", "hogs", "cuda-oom"}

    ok = records["lp"]
    assert ok["status"] == "ok" and ok["error"] is None
    assert 0.0 <= ok["metrics"]["test_accuracy"] <= 1.0

    raised = records["raises"]
    assert raised["status"] == "error"
    assert raised["error"]["type"] == "RuntimeError"
    assert raised["error"]["message"] == "deliberate failure in a strategy"
    assert "Traceback" in raised["error"]["traceback"] and "misbehave" in raised["error"]["traceback"]

    crashed = records["exits"]
    assert crashed["status"] == "error" and crashed["error"]["type"] == "WorkerDied"
    assert "exited with code 3" in crashed["error"]["message"]

    hung = records["sleeps"]  # never checks its budget: killed from outside
    assert hung["status"] == "timeout" and hung["error"]["type"] == "TimeBudgetExceeded"
    assert f"time budget of {HANG_BUDGET} s exceeded; the run did not stop by itself and was killed" \
        in hung["error"]["message"]

    looping = records["loops"]  # checks its budget: stops itself at a step boundary
    assert looping["status"] == "timeout" and looping["error"]["type"] == "TimeBudgetExceeded"
    assert "misbehave" in looping["error"]["traceback"]

    hog = records["hogs"]
    assert hog["status"] == "over_memory" and hog["error"]["type"] == "MemoryBudgetExceeded"
    assert hog["metrics"]["peak_memory_mb"] > 1800

    oom = records["cuda-oom"]
    assert oom["status"] == "over_memory" and oom["error"]["type"] == "OutOfMemoryError"

    for name in ("raises", "exits", "sleeps", "loops", "hogs", "cuda-oom"):
        # every failed run keeps the metrics of the evaluation it completed before failing
        assert records[name]["metrics"]["val_accuracy"] == 0.25, name
        assert records[name]["metrics"]["test_accuracy"] is None


def test_summary_lists_each_failure_with_its_reason(isolation_run):
    _, _, _, (crashes, hangs) = isolation_run
    assert "5 runs planned: 0 already done, 5 executed (1 ok, 4 failed)" in crashes.stdout
    assert "2 runs planned: 0 already done, 2 executed (0 ok, 2 failed)" in hangs.stdout
    lines = {}
    for result in (crashes, hangs):
        assert "Traceback" not in result.stderr
        for line in result.stdout.split("failed runs:")[1].splitlines():
            if "·" in line:
                lines[line.split()[0] + " " + line.split("·")[1].strip()] = line
    assert set(lines) == {"error raises", "error exits", "over_memory hogs", "over_memory cuda-oom",
                          "timeout sleeps", "timeout loops"}
    assert "deliberate failure in a strategy" in lines["error raises"]
    assert "exited with code 3" in lines["error exits"]
    assert "memory budget of 1800 MB exceeded" in lines["over_memory hogs"]
    assert f"time budget of {HANG_BUDGET} s exceeded" in lines["timeout sleeps"]
    assert f"time budget of {HANG_BUDGET} s exceeded" in lines["timeout loops"]


def test_no_retry_keeps_failures_as_they_are(isolation_run):
    root, out, env, _ = isolation_run
    before = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    kept = run_cli("run", str(root / "crashes.toml"), "--out", str(out), "--no-retry", env=env)
    assert kept.returncode == 1
    assert "5 runs planned: 1 already done, 0 executed" in kept.stdout
    assert "4 failures kept (--no-retry)" in kept.stdout
    assert {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")} == before
