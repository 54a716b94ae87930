"""Local parallelism: `--jobs 2` gives the records of a sequential run (same run ids,
same metrics on the CPU, the same failures), and each worker gets its own device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PROBE_AND_FINETUNE, RANDOM_RESNET, THREE_DIGITS, run_cli
from tlbench.errors import UserError
from tlbench.run.executors.devices import parse_devices, worker_devices

TESTS = Path(__file__).resolve().parent
PLUGIN_ENV = {"PYTHONPATH": str(TESTS)}
TIME_BUDGET_S = 20

SUITE = f"""
[suite]
name = "parallel"
seeds = [0]
device = "cpu"
time_budget_s = {TIME_BUDGET_S}
plugins = ["plugins_misbehaving"]

{RANDOM_RESNET}{THREE_DIGITS}{PROBE_AND_FINETUNE}
[[strategies]]
plugin = "raises"

[[strategies]]
plugin = "sleeps"
"""
STATUSES = {"scratch-ft": "ok", "lp": "ok", "ft": "ok", "raises": "error", "sleeps": "timeout"}
TIMING = ("wall_seconds", "peak_memory_mb")

_sequential: dict | None = None


def run_suite_cli(root: Path, name: str, *args: str) -> tuple[dict[str, dict], object]:
    """Run the suite into root/name with a cache of its own; its records by run id."""
    suite = root / "suite.toml"
    suite.write_text(SUITE, encoding="utf-8")
    out = root / name
    env = {**PLUGIN_ENV, "TLBENCH_CACHE_DIR": str(root / f"cache-{name}")}
    result = run_cli("run", str(suite), "--out", str(out), *args, env=env)
    records = {}
    for path in (out / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        records[record["run_id"]] = record
    return records, result


def sequential_records(tmp_path_factory) -> dict[str, dict]:
    """The reference: the suite run with one worker (once per test session)."""
    global _sequential
    if _sequential is None:
        records, result = run_suite_cli(tmp_path_factory.mktemp("sequential"), "out", "--jobs", "1")
        assert result.returncode == 1, result.stderr[-3000:]
        _sequential = records
    return _sequential


def assert_same_records(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert set(got) == set(want)
    assert {r["spec"]["strategy"]["id"]: r["status"] for r in got.values()} == STATUSES
    for run_id, record in got.items():
        reference = want[run_id]
        assert record["status"] == reference["status"]
        if record["status"] == "ok":
            metrics = {k: v for k, v in record["metrics"].items() if k not in TIMING}
            assert metrics == {k: v for k, v in reference["metrics"].items() if k not in TIMING}
            # to the last bit: training losses and the probe's validation scores
            assert record["details"]["strategy"] == reference["details"]["strategy"]
            assert record["provenance"]["threads"] == reference["provenance"]["threads"] == 1
        else:
            assert record["error"]["type"] == reference["error"]["type"]
            assert record["metrics"]["test_accuracy"] is None
    by_strategy = {r["spec"]["strategy"]["id"]: r for r in got.values()}
    assert by_strategy["raises"]["error"]["message"] == "deliberate failure in a strategy"
    assert by_strategy["sleeps"]["error"]["type"] == "TimeBudgetExceeded"
    assert by_strategy["sleeps"]["metrics"]["val_accuracy"] == 0.25
    ft = by_strategy["ft"]["metrics"]
    assert ft["negative_transfer"] == ft["test_accuracy"] - by_strategy["scratch-ft"]["metrics"]["test_accuracy"]


def test_two_jobs_give_the_sequential_records(tmp_path_factory):
    want = sequential_records(tmp_path_factory)
    got, result = run_suite_cli(tmp_path_factory.mktemp("jobs2"), "out", "--jobs", "2")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "5 runs planned: 0 already done, 5 executed (3 ok, 2 failed)" in result.stdout
    assert_same_records(got, want)


def test_devices_one_per_worker():
    # --devices: round robin over the listed devices
    assert worker_devices("auto", "cuda:0", ["cuda:0", "cuda:1"], 2, cuda_count=2) == ["cuda:0", "cuda:1"]
    assert worker_devices("cuda", "cuda:0", ["cuda:1", "cuda:0"], 3, cuda_count=2) == ["cuda:1", "cuda:0", "cuda:1"]
    # default: every visible GPU when the suite asks for auto or cuda
    assert worker_devices("auto", "cuda:0", None, 4, cuda_count=4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert worker_devices("cuda", "cuda:0", None, 3, cuda_count=2) == ["cuda:0", "cuda:1", "cuda:0"]
    # a suite pinned to one GPU stays there; the CPU stays the CPU
    assert worker_devices("cuda:1", "cuda:1", None, 2, cuda_count=4) == ["cuda:1", "cuda:1"]
    assert worker_devices("auto", "cpu", None, 2, cuda_count=0) == ["cpu", "cpu"]
    with pytest.raises(UserError, match=r"--devices: cuda:2 asked for, but torch sees 2 CUDA device"):
        worker_devices("auto", "cuda:0", ["cuda:0", "cuda:2"], 2, cuda_count=2)


def test_devices_flag_is_checked():
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda") == ["cuda:0"] and parse_devices(None) is None
    for bad in ("gpu0", "cuda:x", ","):
        with pytest.raises(UserError, match="--devices"):
            parse_devices(bad)


def test_bad_devices_is_a_usage_error(cli, write_suite, tmp_path):
    suite = write_suite(SUITE)
    result = cli("run", str(suite), "--out", str(tmp_path / "out"), "--devices", "gpu0", env=PLUGIN_ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("tlbench: error: --devices: 'gpu0' is not a device")


def test_a_source_that_cannot_be_prepared_is_a_suite_error(cli, write_suite, tmp_path):
    suite = write_suite(SUITE.replace('plugin = "timm"', 'plugin = "unpreparable"', 1)
                        .replace('model = "test_resnet"\npretrained = false\ninput_size = 32\n', ""))
    result = cli("run", str(suite), "--out", str(tmp_path / "out"), "--jobs", "2", env=PLUGIN_ENV)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"tlbench: error: {suite}: sources[0] (rn): unpreparable prepare failed: RuntimeError: "
        f"the weights server went away")
