"""Shared fixtures: an isolated tlbench cache, the plugin registry, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh tlbench cache (weights, features) for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(path))
    return path


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
