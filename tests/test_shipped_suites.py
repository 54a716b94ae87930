"""Every offline suite tlbench ships passes its dry run from a fresh cache, with the
matrix its header describes."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import REPO

OFFLINE = {"quickstart": 25, "tasks": 63, "dense": 30, "sweeps": 155, "domain-adaptation": None, "multitask": 33}
"""Suite → the runs its dry run lists (None: not pinned here)."""


@pytest.mark.parametrize("name", [*OFFLINE, "audio-quick"])
def test_offline_suites_pass_their_dry_run(cli, tmp_path, name):
    if name == "audio-quick" and shutil.which("espeak-ng") is None:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is not installed; CI must dry-run audio-quick")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    done = cli("run", str(REPO / "suites" / f"{name}.toml"), "--dry-run", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()
    summary = next(line for line in done.stdout.splitlines() if " runs: " in line)
    if OFFLINE.get(name) is not None:
        assert summary.startswith(f"{OFFLINE[name]} runs:"), summary


def dry_run_without_network(cli, tmp_path, name: str):
    """`tlbench run suites/<name>.toml --dry-run` with no hub or torch hub reachable and empty caches."""
    no_network = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "",
                  "TORCH_HOME": str(tmp_path / "torch")}
    done = cli("run", str(REPO / "suites" / f"{name}.toml"), "--dry-run", "--out", str(tmp_path / "out"),
               env=no_network)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()
    return done


def test_the_detection_suite_lists_its_matrix_offline(cli, tmp_path):
    """suites/detection.toml needs network once; its dry run works without it."""
    done = dry_run_without_network(cli, tmp_path, "detection")
    assert "54 runs: 36 transfer runs (3 sources × 2 targets × 2 strategies × 3 seeds) + 18 from-scratch " \
           "baselines" in done.stdout


def test_the_multitask_vision_suite_lists_its_matrix_offline(cli, tmp_path):
    """suites/multitask-vision.toml needs network once; its dry run works without it."""
    done = dry_run_without_network(cli, tmp_path, "multitask-vision")
    assert "21 runs: 15 transfer runs, 9 of them multi-task" in done.stdout
    assert done.stdout.count("multitask resnet50-in1k → ppe-and-beans") == 9
