"""SIGTERM, which Slurm and Kubernetes send to stop a job, is handled like Ctrl-C: the
finished runs are kept, the runs in progress are recorded as interrupted, one line
says so, and `tlbench run` exits with 143. Real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import RANDOM_RESNET, THREE_DIGITS, run_cli
from tlbench.run.executors.stopped import Terminated, exit_code_of, interruption_message

TESTS = Path(__file__).resolve().parent

SUITE = """
[suite]
name = "signals"
seeds = [0]
device = "cpu"
time_budget_s = 600
plugins = ["plugins_misbehaving"]

[baseline]
enabled = false
""" + RANDOM_RESNET + THREE_DIGITS + """
[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
plugin = "sleeps"
"""


def records(out: Path) -> dict[str, dict]:
    """The records in `out` by strategy (none while `out` does not exist)."""
    found = [json.loads(path.read_text()) for path in (out / "runs").glob("*.json")]
    return {record["spec"]["strategy"]["id"]: record for record in found}


def test_sigterm_to_the_whole_job_stops_like_ctrl_c(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "out"
    started = tmp_path / "started"
    started.mkdir()
    env = {**os.environ, "PYTHONPATH": str(TESTS), "TLBENCH_CACHE_DIR": str(tmp_path / "cache"),
           "MISBEHAVING_STARTED": str(started)}
    # its own process group, which gets the signal as a Slurm job step's processes do
    driver = subprocess.Popen([sys.executable, "-m", "tlbench.cli", "run", str(suite), "--out", str(out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 600
    while "lp" not in records(out) or not (started / "sleeps").exists():  # one done, one sleeping
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the probe never finished, or the sleeper never started"
        time.sleep(0.05)
    time.sleep(1.0)  # the sleeper's evaluation, sent before it said it started, reaches the driver
    workers = psutil.Process(driver.pid).children(recursive=True)
    assert workers
    os.killpg(driver.pid, signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)

    assert driver.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == ("tlbench: terminated by SIGTERM; finished runs are recorded, run the "
                                               "same command to continue")
    found = records(out)
    assert found["lp"]["status"] == "ok"  # finished runs are kept
    sleeper = found["sleeps"]  # recorded by the driver: the worker ignored the signal and was killed
    assert sleeper["status"] == "error" and sleeper["error"]["type"] == "Interrupted"
    assert sleeper["error"]["message"] == "stopped by SIGTERM (a scheduler or `kill` ended the suite)"
    assert sleeper["metrics"]["val_accuracy"] == 0.25  # what it reported before it was stopped
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived their driver"


def test_an_interrupted_run_is_redone_even_with_no_retry(tmp_path):
    """The next run goes on where SIGTERM stopped: the run it interrupted is redone."""
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.replace('plugin = "sleeps"', 'plugin = "full-finetune"\nepochs = 1'), encoding="utf-8")
    out = tmp_path / "out"
    env = {"PYTHONPATH": str(TESTS), "TLBENCH_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("run", str(suite), "--out", str(out), "--jobs", "1", env=env)
    assert first.returncode == 0, first.stderr
    path = next(p for p in (out / "runs").glob("*.json") if json.loads(p.read_text())["spec"]["strategy"]["id"]
                == "full-finetune")
    record = json.loads(path.read_text())
    record.update(status="error", error={"type": "Interrupted", "traceback": None,
                                         "message": interruption_message(Terminated())})
    record["metrics"]["test_accuracy"] = None
    path.write_text(json.dumps(record), encoding="utf-8")
    again = run_cli("run", str(suite), "--out", str(out), "--no-retry", env=env)
    assert again.returncode == 0, again.stderr
    assert "2 runs planned: 1 already done, 1 executed (1 ok, 0 failed)" in again.stdout


def test_exit_codes_are_the_shells():
    assert exit_code_of(Terminated()) == 143 and str(Terminated()) == "terminated by SIGTERM"
    assert exit_code_of(KeyboardInterrupt()) == 130
    assert interruption_message(KeyboardInterrupt()) == "interrupted by the user (Ctrl-C)"
