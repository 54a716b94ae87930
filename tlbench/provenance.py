"""Provenance: which software, on which machine, produced a record."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version

from . import __version__

LIBRARIES = ("torch", "timm", "transformers", "peft", "datasets", "numpy", "scikit-learn", "pluggy")


def library_versions() -> dict[str, str | None]:
    return dict(_library_versions())


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    """Read once per process: parsing package metadata costs about 30 ms, every record."""
    return {"tlbench": __version__, "python": platform.python_version(), **versions_of(LIBRARIES)}


def versions_of(names) -> dict[str, str | None]:
    """Each installed distribution's version (None where it is not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The revision of the tlbench checkout when it runs from one, else None."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            return torch.cuda.get_device_name(torch.device(device))
        except Exception:  # no driver in this process, or a broken CUDA context
            return "cuda"
    return cpu_name()


def provenance(device: str) -> dict:
    """Everything a reader needs to know where a number came from."""
    return {
        "versions": library_versions(),
        "device": device,
        "device_name": device_name(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_revision": git_revision(),
    }
