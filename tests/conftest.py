"""Shared fixtures: an isolated tlbench cache, the plugin registry, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

RANDOM_RESNET = """
[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 32
"""
"""A source every test machine has: timm's tiny ResNet with random weights."""

THREE_DIGITS = """
[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1, 2]
shots = 5
val_shots = 3
"""
"""A small target from scikit-learn's bundled digits: 5 training images per class."""

PROBE_AND_FINETUNE = """
[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 8
"""
"""The two strategies of a minimal comparison, kept short."""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh tlbench cache (weights, features) for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and a shared CPU punishes more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def resnet_file(tmp_path_factory) -> str:
    """Random test_resnet weights in a local file: the same 'pretrained' weights every build."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.safetensors"
    state = timm.create_model("test_resnet", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


@pytest.fixture(scope="session")
def registry():
    from tlbench.plugins import PluginRegistry

    return PluginRegistry.load()


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite file from TOML text (dedented) and return its path."""

    def write(text: str, name: str = "suite.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `tlbench` command in a subprocess and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tlbench.cli", *args], cwd=cwd, env=full_env,
                           capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(cache_dir):
    return lambda *args, **kw: run_cli(*args, env={"TLBENCH_CACHE_DIR": str(cache_dir), **kw.pop("env", {})}, **kw)
