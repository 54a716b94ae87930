"""Every offline suite tlbench ships passes its dry run from a fresh cache, with the
matrix its header describes."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import REPO

OFFLINE = {"quickstart": 25, "tasks": 63, "dense": 15, "sweeps": 155, "domain-adaptation": None}
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
