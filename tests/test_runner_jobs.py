"""How a suite is run: ``--jobs auto`` (one worker per GPU, or per core as far as memory
allows, said in the progress header) and the progress of source preparations (a line
as each starts and ends, with the time it took last time)."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from tlbench.progress import PreparationTimes, Progress
from tlbench.run.executors import capacity
from tlbench.run.executors.capacity import (DEFAULT_RUN_MEMORY_MB, cpu_run_memory, cpu_workers, gpu_workers,
                                            recorded_run_memory_mb)

BUDGET = "by the suite's memory budget"


def test_one_worker_per_core_as_far_as_memory_allows():
    assert cpu_workers(2, 4096, BUDGET, 20_000, runs=25).count == 2
    assert str(cpu_workers(2, 4096, BUDGET, 20_000, runs=25)) == (
        "2 workers (auto: 2 cores; 4,096 MB per run by the suite's memory budget, 19.5 GB free)")
    capped = cpu_workers(16, 4096, BUDGET, 9_000, runs=25)  # 2 runs of 4 GB fit in 9 GB, not 3
    assert capped.count == 2 and "16 cores; memory for 2: 4,096 MB per run" in capped.why
    assert cpu_workers(16, 4096, BUDGET, 1_000, runs=25).count == 1  # never none
    assert str(cpu_workers(8, 4096, BUDGET, 60_000, runs=3)) == "3 workers (auto: 8 cores; 3 runs to do)"


def test_one_worker_per_gpu():
    assert str(gpu_workers(4, runs=25)) == "4 workers (auto: 4 GPUs)"
    assert str(gpu_workers(4, runs=1)) == "1 worker (auto: 4 GPUs; 1 run to do)"


def cpu_record(peak: float | None, device: str = "cpu") -> dict:
    return {"metrics": {"peak_memory_mb": peak}, "provenance": {"device": device}}


def test_memory_one_run_needs():
    records = [cpu_record(900.0), cpu_record(1400.5), cpu_record(None), cpu_record(30_000.0, "cuda:0")]
    assert recorded_run_memory_mb(records) == 1400.5  # GPU peaks are GPU memory: not counted
    assert cpu_run_memory(4096, records) == (4096.0, BUDGET)
    assert cpu_run_memory(None, records) == (1400.5, "by the largest recorded run")
    assert cpu_run_memory(None, []) == (DEFAULT_RUN_MEMORY_MB, "assumed (no memory budget, no recorded run)")


def test_a_cgroup_limit_caps_the_memory_available(tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "_CGROUP", tmp_path)
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text(f"{2**30}\n")
    unlimited = capacity.available_memory_mb()
    assert unlimited > 0
    (tmp_path / "memory.max").write_text(f"{3 * 2**30}\n")  # 3 GiB, 1 used: 2 GiB free
    assert capacity.available_memory_mb() == min(unlimited, 2048.0)


def test_preparation_times_are_kept_by_what_the_preparation_depends_on(tmp_path):
    source = {"id": "pre", "plugin": "pretrain", "version": "1", "params": {"epochs": 15}}
    cpu = PreparationTimes(tmp_path, "cpu")
    assert cpu.estimate(source) is None
    cpu.measured(source, 0.2)  # found in the cache: says nothing about the next real preparation
    assert cpu.estimate(source) is None
    cpu.measured(source, 71.04)
    assert PreparationTimes(tmp_path, "cpu").estimate(source) == 71.0
    assert PreparationTimes(tmp_path, "cuda:1").estimate(source) is None  # other kernels, other times
    assert cpu.estimate({**source, "params": {"epochs": 40}}) is None
    (tmp_path / PreparationTimes.FILE).write_text("{not json")
    assert cpu.estimate(source) is None  # a hint only


@pytest.fixture
def quick_progress(monkeypatch):
    monkeypatch.setattr(Progress, "QUIET_S", 0.05)
    lines: list[str] = []
    return lines, lambda times=None: Progress(3, lines.append, header="tlbench: 3 runs to do, 1 worker (--jobs)",
                                              preparation_times=times)


def test_preparations_are_told_when_they_take_a_while(quick_progress, tmp_path):
    import time

    lines, progress = quick_progress
    shown = progress(PreparationTimes(tmp_path, "cpu"))
    source = {"id": "pre", "plugin": "pretrain", "version": "1", "params": {}}
    shown.preparation({**source, "id": "no-op"}, None)
    shown.preparation({**source, "id": "no-op"}, 0.01)  # nothing to prepare: nothing said
    shown.preparation(source, None)
    time.sleep(0.3)
    shown.preparation(source, 42.0)
    shown.close()
    assert lines == ["tlbench: 3 runs to do, 1 worker (--jobs)", "tlbench: preparing source pre (pretrain)",
                     "tlbench: source pre prepared in 42.0 s"]
    lines.clear()
    again = progress(PreparationTimes(tmp_path, "cpu"))
    again.preparation(source, None)  # told at once, with last time's duration
    assert lines[-1] == "tlbench: preparing source pre (pretrain); it took 42.0 s last time"
    again.preparation(source, 0.1)
    assert lines[-1] == "tlbench: source pre prepared in 0.1 s"
    again.close()


SLOW_SOURCE = '''
"""A timm source whose preparation takes a while (a download, a pretraining)."""
import time

import tlbench
from tlbench_builtin.timm_source import TimmSource


class SlowToPrepare(TimmSource):
    name = "slow-to-prepare"
    description = "timm, prepared slowly"

    def prepare(self, params, env):
        time.sleep(1.5)
        super().prepare(params, env)


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(SlowToPrepare())
'''


def test_run_says_how_many_workers_and_how_preparations_go(cli, tmp_path):
    (tmp_path / "slow_source.py").write_text(textwrap.dedent(SLOW_SOURCE), encoding="utf-8")
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent("""
        [suite]
        name = "jobs"
        seeds = [0, 1]
        device = "cpu"
        plugins = ["slow_source"]

        [baseline]
        enabled = false

        [[sources]]
        id = "slow"
        plugin = "slow-to-prepare"
        model = "test_resnet"
        pretrained = false
        input_size = 32

        [[targets]]
        id = "d"
        plugin = "digits"
        classes = [0, 1, 2]
        shots = 5
        val_shots = 3

        [[strategies]]
        id = "lp"
        plugin = "linear-probe"
    """), encoding="utf-8")
    first = cli("run", str(suite), "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert re.fullmatch(r"tlbench: 2 runs to do, \d workers? \(auto: \d+ cores?; .*\)", lines[0]), lines[0]
    assert lines[1] == "tlbench: preparing source slow (slow-to-prepare)"
    assert re.fullmatch(r"tlbench: source slow prepared in \d+\.\d s", lines[2]), lines[2]
    took = float(lines[2].split(" in ")[1].removesuffix(" s"))
    assert took >= 1.5
    times = json.loads((tmp_path / "cache" / PreparationTimes.FILE).read_text())
    assert [entry["source"] for entry in times.values()] == ["slow"]

    second = cli("run", str(suite), "--out", str(tmp_path / "second"), "--jobs", "1")
    assert second.returncode == 0, second.stderr
    lines = second.stderr.splitlines()
    assert lines[0] == "tlbench: 2 runs to do, 1 worker (--jobs)"
    assert lines[1] == f"tlbench: preparing source slow (slow-to-prepare); it took {took:.1f} s last time"


GPU_SUITE = """
[suite]
name = "gpus"
seeds = [0]
device = "{device}"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false

[[targets]]
id = "d"
plugin = "digits"

[[strategies]]
id = "lp"
plugin = "linear-probe"
"""


@pytest.mark.parametrize("device, devices, jobs, want", [
    ("auto", None, None, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),  # every visible GPU
    ("cuda:1", None, None, ["cuda:1"]),  # a suite pinned to one GPU
    ("auto", ["cuda:0", "cuda:2"], None, ["cuda:0", "cuda:2"]),  # --devices
    ("auto", ["cuda:0", "cuda:2"], 3, ["cuda:0", "cuda:2", "cuda:0"]),  # --jobs wins
])
def test_auto_jobs_on_gpus_is_one_worker_per_gpu(registry, tmp_path, monkeypatch, device, devices, jobs, want):
    import torch

    from tlbench.plan.suite import load_suite
    from tlbench.runner import ExecutionOptions, local_workers

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    path = tmp_path / "suite.toml"
    path.write_text(GPU_SUITE.format(device=device), encoding="utf-8")
    suite = load_suite(path, registry)
    resolved = "cuda:0" if device == "auto" else device
    workers, per_worker = local_workers(suite, ExecutionOptions(jobs=jobs, devices=devices), resolved, runs=25,
                                       records=[])
    assert per_worker == want and workers.count == len(want)
    assert workers.why == ("--jobs" if jobs else f"auto: {len(want)} GPU{'s' if len(want) > 1 else ''}")
