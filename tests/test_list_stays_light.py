"""`tlbench list` loads every plugin (built-in and installed) without importing numpy,
torch or the other heavy libraries: registration imports only what a schema needs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "torch", "timm", "transformers", "datasets", "peft", "sklearn", "pandas")

CODE = f"""
import contextlib, io, json, sys
from tlbench.cli import main
with contextlib.redirect_stdout(io.StringIO()) as listing:
    code = main(["list"])
print(json.dumps({{"code": code, "listing": listing.getvalue(),
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_listing_plugins_imports_no_heavy_library(cache_dir):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert "imagefolder" in result["listing"] and "hf-dataset" in result["listing"]  # their modules loaded
    assert result["heavy"] == []
