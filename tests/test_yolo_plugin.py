"""The optional `tlbench-yolo` plugin (plugins/yolo, AGPL-3.0, wrapping ultralytics): its
tests, run from tlbench's own test run when ultralytics and the plugin are installed,
skipped otherwise (tlbench does not depend on either; CI installs neither).

The tests themselves live with the plugin (plugins/yolo/tests/test_yolo.py) and are
collected here too, so the root run, which collects only tests/, covers them."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

# before anything imports ultralytics: its settings file in a temporary folder, not $HOME, and no network
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="tlbench-yolo-settings-"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

pytest.importorskip("ultralytics", reason="ultralytics (AGPL-3.0, an optional plugin's dependency) is not installed; "
                                          "to run these: pip install ultralytics && pip install -e plugins/yolo")
pytest.importorskip("tlbench_yolo", reason="the optional tlbench-yolo plugin is not installed: "
                                           "pip install -e plugins/yolo")

_PATH = Path(__file__).resolve().parent.parent / "plugins" / "yolo" / "tests" / "test_yolo.py"
_spec = importlib.util.spec_from_file_location("tlbench_yolo_plugin_tests", _PATH)
_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tests)

# the plugin's tests and the fixtures they use, collected as this module's own
globals().update({name: value for name, value in vars(_tests).items()
                  if name.startswith("test_") or name in ("checkpoint", "built")})
