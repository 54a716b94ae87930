"""The optional `hf` extra: transformers, datasets and peft, installed with
``pip install 'tlbench[hf]'`` and not with the plain install.

The items that use them check for them in `check`, so a suite that needs a missing
one stops before any run with one line saying what to install, instead of every run
failing on its import. The check finds the packages without importing them.
"""

from __future__ import annotations

import importlib.util

from tlbench.errors import ResourceUnavailable

INSTALL = "pip install 'tlbench[hf]'"


def require_hf_extra(what: str, *modules: str) -> None:
    """Raise `ResourceUnavailable` if one of `modules` is not installed; `what` names
    the item that needs them (e.g. ``strategy 'lora'``)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ResourceUnavailable(f"{what} needs the hf extra ({module} is not installed): {INSTALL}")
