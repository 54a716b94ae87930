"""Recovery: a suite interrupted by Ctrl-C or killed with SIGKILL resumes where it
stopped, and ends with the report of an uninterrupted run; a corrupt record is
reported and redone; a failed record is redone unless --no-retry keeps it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import PROBE_AND_FINETUNE, RANDOM_RESNET, THREE_DIGITS, run_cli

SUITE = f"""
[suite]
name = "recovery"
seeds = [0, 1]
device = "cpu"
time_budget_s = 600

{RANDOM_RESNET}{THREE_DIGITS}{PROBE_AND_FINETUNE}"""
RUNS = 6  # 2 seeds x (1 baseline + 2 strategies)
CHANGING = ["wall_seconds", "peak_memory_mb", "started_at", "finished_at", "git_revision"]


def record_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}


def comparable_report(out: Path) -> tuple[pd.DataFrame, list[dict]]:
    """The report's results and leaderboard cells, without what differs between two
    equal runs (times and memory)."""
    frame = pd.read_csv(out / "results.csv").drop(columns=CHANGING).sort_values("run_id")
    cells = json.loads((out / "summary.json").read_text())["cells"]
    cells = [{k: v for k, v in cell.items() if "wall" not in k and "memory" not in k} for cell in cells]
    return frame.reset_index(drop=True), cells


def start(suite: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tlbench.cli", "run", str(suite), "--out", str(out)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_records(out: Path, count: int, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(list((out / "runs").glob("*.json"))) < count:
        assert process.poll() is None, f"the run ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "no records appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    suite = root / "suite.toml"
    suite.write_text(SUITE, encoding="utf-8")
    clean = root / "clean"
    result = run_cli("run", str(suite), "--out", str(clean), env={"TLBENCH_CACHE_DIR": str(root / "cache-clean")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(record_files(clean)) == RUNS
    return root, suite, clean


def test_interrupted_and_killed_suite_resumes_to_the_clean_report(setup):
    root, suite, clean = setup
    out, env = root / "resumed", {"TLBENCH_CACHE_DIR": str(root / "cache-resumed")}

    # Ctrl-C: the driver records the run it interrupts, exits 130
    first = start(suite, out, env)
    wait_for_records(out, 1, first)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    records = [json.loads(b) for b in record_files(out).values()]
    interrupted = [r for r in records if (r["error"] or {}).get("type") == "Interrupted"]
    workers = int(re.search(r"runs to do, (\d+) workers? \(auto: ", stderr).group(1))  # --jobs auto
    assert len(interrupted) <= workers and all(r["status"] == "error" for r in interrupted)
    assert all(r["error"]["message"] == "interrupted by the user (Ctrl-C)" for r in interrupted)

    # SIGKILL of the driver in the middle of a run: its workers go with it
    second = start(suite, out, env)
    wait_for_records(out, len(record_files(out)) + 1, second)  # a run not recorded before: the workers are at it
    workers = psutil.Process(second.pid).children(recursive=True)
    assert workers
    second.send_signal(signal.SIGKILL)
    second.communicate(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived their killed driver"
    before = record_files(out)
    assert all(json.loads(data)["run_id"] + ".json" == name for name, data in before.items())  # all whole
    ok_before = {name for name, data in before.items() if json.loads(data)["status"] == "ok"}
    assert 0 < len(ok_before) < RUNS

    # the same command again runs only what is missing or failed
    third = run_cli("run", str(suite), "--out", str(out), env=env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"{RUNS} runs planned: {len(ok_before)} already done, {RUNS - len(ok_before)} executed" in third.stdout
    after = record_files(out)
    assert {name: after[name] for name in ok_before} == {name: before[name] for name in ok_before}
    assert set(after) == set(record_files(clean))

    resumed_frame, resumed_cells = comparable_report(out)
    clean_frame, clean_cells = comparable_report(clean)
    pd.testing.assert_frame_equal(resumed_frame.drop(columns=["attempt"]), clean_frame.drop(columns=["attempt"]))
    assert resumed_cells == clean_cells


def test_corrupt_and_failed_records_are_redone(setup):
    root, suite, clean = setup
    out, env = root / "damaged", {"TLBENCH_CACHE_DIR": str(root / "cache-clean")}
    shutil.copytree(clean, out)
    corrupt, failed = sorted((out / "runs").glob("*.json"))[:2]
    originals = {path.name: json.loads(path.read_text()) for path in (corrupt, failed)}
    corrupt.write_text('{"schema_version": 1, "run_id": "trunc', encoding="utf-8")
    record = dict(originals[failed.name], status="error", error={
        "type": "RuntimeError", "message": "an earlier failure", "traceback": None})
    record["metrics"] = dict(record["metrics"], test_accuracy=None)
    failed.write_text(json.dumps(record), encoding="utf-8")

    # --no-retry keeps the failure (exit 1, listed); the corrupt file is never a result
    kept = run_cli("run", str(suite), "--out", str(out), "--no-retry", env=env)
    assert kept.returncode == 1, kept.stderr[-3000:]
    assert corrupt.name in kept.stderr and "will be redone" in kept.stderr
    assert "Traceback" not in kept.stderr
    assert f"{RUNS - 2} already done, 1 executed (1 ok, 0 failed), 1 failures kept (--no-retry)" in kept.stdout
    assert "an earlier failure" in kept.stdout
    assert json.loads(failed.read_text())["error"]["message"] == "an earlier failure"

    # by default a failure is never taken as done
    retried = run_cli("run", str(suite), "--out", str(out), env=env)
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert f"{RUNS - 1} already done, 1 executed (1 ok, 0 failed)" in retried.stdout
    for path in (corrupt, failed):
        redone = json.loads(path.read_text())
        assert redone["status"] == "ok"
        assert {k: v for k, v in redone["metrics"].items() if k not in CHANGING} == \
               {k: v for k, v in originals[path.name]["metrics"].items() if k not in CHANGING}
    assert json.loads(failed.read_text())["attempt"] == 2
    archived = json.loads((out / "runs" / "attempts" / f"{failed.stem}.1.json").read_text())
    assert archived["error"]["message"] == "an earlier failure"
    kept_corrupt = list((out / "runs" / "corrupt").iterdir())
    assert len(kept_corrupt) == 1 and "trunc" in kept_corrupt[0].read_text()
