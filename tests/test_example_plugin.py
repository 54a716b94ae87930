"""The example third-party plugin package (plugins/example), end to end: installed as
its own distribution, listed with its version, used by a suite through the CLI, and
its own test suite (written with tlbench.testing) passes."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DIST = "tlbench-example-plugin"
ITEMS = {"sources": "random-conv", "targets": "stripes", "strategies": "nearest-mean"}


@pytest.fixture(autouse=True, scope="module")
def example_installed():
    try:
        assert version(DIST) == "0.1.0"
    except PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed; run `pip install -e plugins/example` (as .ci/run does)")


def test_list_shows_items_with_distribution_and_version(cli):
    result = cli("list")
    assert result.returncode == 0, result.stderr
    for name in ITEMS.values():
        [line] = [line for line in result.stdout.splitlines() if line.split()[:1] == [name]]
        assert f"[{DIST} 0.1.0]" in line
    assert DIST not in result.stderr  # no warnings about the example plugin

    listed = json.loads(cli("list", "--json").stdout)
    for kind, name in ITEMS.items():
        [entry] = [entry for entry in listed[kind] if entry["name"] == name]
        assert entry["plugin"]["distribution"] == DIST and entry["plugin"]["version"] == "0.1.0"
        assert entry["plugin"]["builtin"] is False
        assert entry["run_version"] == f"{entry['version']} ({DIST} 0.1.0)"


SUITE = """
[suite]
name = "example-plugin"
seeds = [0]
device = "cpu"
time_budget_s = 300

[baseline]
plugin = "full-finetune"
epochs = 2
batch_size = 8

[[sources]]
id = "random-conv"
plugin = "random-conv"
width = 8
input_size = 16

[[targets]]
id = "stripes"
plugin = "stripes"
classes = 3
per_class = 12
shots = 4
val_shots = 2
image_size = 12

[[strategies]]
plugin = "nearest-mean"

[[strategies]]
plugin = "linear-probe"
max_iter = 50
"""


def test_suite_using_the_plugin_runs_and_records_its_version(cli, write_suite, tmp_path, registry):
    out = tmp_path / "out"
    suite = write_suite(SUITE)
    result = cli("run", str(suite), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))]
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)
    by_strategy = {r["spec"]["strategy"]["plugin"]: r for r in records if not r["spec"]["baseline"]}
    ncm = by_strategy["nearest-mean"]
    assert ncm["spec"]["strategy"]["version"] == f"1 ({DIST} 0.1.0)"
    assert ncm["spec"]["source"]["version"] == f"1 ({DIST} 0.1.0)"
    assert ncm["spec"]["target"]["version"] == f"1 ({DIST} 0.1.0)"
    builtin_version = registry.get("strategy", "linear-probe").item.version
    assert by_strategy["linear-probe"]["spec"]["strategy"]["version"] == builtin_version  # no distribution
    assert ncm["metrics"]["n_train"] == 3 * 4 and ncm["metrics"]["trainable_params"] == 3 * 8
    # nearest-mean's negative-transfer score is against the from-scratch random-conv baseline
    assert ncm["metrics"]["negative_transfer"] == pytest.approx(
        ncm["metrics"]["test_accuracy"] - ncm["metrics"]["baseline_test_accuracy"])

    again = cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0 and "3 already done, 0 executed" in again.stdout


def test_the_example_packages_own_tests_pass(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(REPO / "plugins" / "example" / "tests")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
