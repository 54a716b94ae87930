"""timm's model names, without importing timm on every check.

Checking a suite's model names against timm's registry needs the registry, and
importing timm imports torch and torchvision: about 6 s, most of what a dry run took.
The names of a timm release do not change, so the first check writes them (every
architecture and every pretrained tag) to a JSON file in tlbench's cache, named after
timm's installed version (read from its metadata, which needs no import), and later
checks read that file. A name missing from the file is confirmed against the live
registry before it is refused, so a model registered at run time (a plugin's own
`timm.register_model`) still passes; only a refusal, or a file that cannot be read,
imports timm.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path


def _timm_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("timm")
    except PackageNotFoundError:
        return None


def _listing_path(cache_dir: Path, timm_version: str) -> Path:
    return Path(cache_dir) / "timm" / f"names-{timm_version}.json"


@lru_cache(maxsize=4)
def _listing(cache_dir: str) -> dict[str, frozenset[str]] | None:
    """{'architectures': ..., 'pretrained': ...} of the installed timm, from the cache
    (written from the live registry the first time); None when timm is not installed."""
    timm_version = _timm_version()
    if timm_version is None:
        return None
    path = _listing_path(Path(cache_dir), timm_version)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {key: frozenset(data[key]) for key in ("architectures", "pretrained")}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import timm

    data = {"timm": timm_version, "architectures": sorted(timm.list_models()),
            "pretrained": sorted(timm.list_pretrained())}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the next check the import
        pass
    return {key: frozenset(data[key]) for key in ("architectures", "pretrained")}


def is_known(model: str, cache_dir: Path) -> bool:
    """Whether timm knows `model`: an architecture, or 'architecture.tag' with a
    pretrained tag. Reads the cached listing; asks the live registry before saying no."""
    listing = _listing(str(cache_dir))
    arch, _, tag = model.partition(".")
    if listing is not None:
        if tag and model in listing["pretrained"]:
            return True
        if not tag and arch in listing["architectures"]:
            return True
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(arch):
        return False
    if not tag:
        return True
    try:
        get_pretrained_cfg(model)
    except RuntimeError:
        return False
    return True
