"""Strategies that fail on purpose, for the isolation, recovery and executor tests.

Loaded through a suite's ``plugins = ["plugins_misbehaving"]`` (with this folder on
PYTHONPATH). Each one reports an evaluation first (val accuracy 0.25), so a run that
is stopped later still has the metrics of its last completed evaluation, and then, when
``MISBEHAVING_STARTED`` names a folder, creates a file there named after itself, so a
test can wait until it has got that far.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tlbench
from tlbench.api import Source, Strategy
from tlbench.params import Param

LAST_VAL = 0.25


class _Misbehaving(Strategy):
    version = "1"

    def fit(self, params: dict, run):
        run.note_eval(epoch=1, val_accuracy=LAST_VAL)
        if os.environ.get("MISBEHAVING_STARTED"):
            (Path(os.environ["MISBEHAVING_STARTED"]) / self.name).touch()
        self.misbehave(params, run)
        raise AssertionError("unreachable")


class Raises(_Misbehaving):
    name = "raises"
    description = "raises a RuntimeError"

    def misbehave(self, params, run):
        raise RuntimeError("deliberate failure in a strategy")


class Exits(_Misbehaving):
    name = "exits"
    description = "ends its process with os._exit(3), as a crash would"

    def misbehave(self, params, run):
        os._exit(3)


class Sleeps(_Misbehaving):
    name = "sleeps"
    description = "sleeps far past its time budget, never checking it"

    def misbehave(self, params, run):
        time.sleep(3600)


class Loops(_Misbehaving):
    name = "loops"
    description = "loops past its time budget, checking it at every step"

    def misbehave(self, params, run):
        while True:
            run.check_budget()
            time.sleep(0.05)


class Hogs(_Misbehaving):
    name = "hogs"
    description = "allocates (and touches) memory past its budget, then waits"
    params = {"mb": Param(int, 2048, "megabytes to allocate", min=1)}

    def misbehave(self, params, run):
        hoard = bytearray(params["mb"] * 2**20)
        for i in range(0, len(hoard), 4096):  # touch every page: resident, not just reserved
            hoard[i] = 1
        time.sleep(3600)


class CudaOutOfMemory(_Misbehaving):
    name = "cuda-oom"
    description = "raises torch's CUDA out-of-memory error, as an allocation on a full GPU does"

    def misbehave(self, params, run):
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


class Unpreparable(Source):
    name = "unpreparable"
    version = "1"
    description = "a source whose one-time preparation fails (a download that breaks)"

    def prepare(self, params: dict, env):
        raise RuntimeError("the weights server went away")


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(Unpreparable())


@tlbench.hookimpl
def tlbench_register_strategies(register):
    for cls in (Raises, Exits, Sleeps, Loops, Hogs, CudaOutOfMemory):
        register(cls())
