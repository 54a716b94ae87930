"""tlbench: a plugin-based benchmark harness for transfer-learning strategies.

Importing this package stays cheap (no torch): the CLI and `tlbench list` rely on it.
"""

import pluggy

__version__ = "0.1.0"

PROJECT = "tlbench"
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for plugin hook implementations: ``@tlbench.hookimpl``."""

__all__ = ["__version__", "hookimpl", "PROJECT"]
