"""Which device each worker process gets.

On a machine with several GPUs each worker gets its own: the ones named with
``--devices``, else every visible GPU when the suite asks for ``auto`` or ``cuda``.
With more workers than devices, workers share devices in turn. A suite pinned to one
GPU (``cuda:1``) keeps all its workers there unless ``--devices`` says otherwise.
"""

from __future__ import annotations

import re

from ...errors import UserError

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def parse_devices(text: str | None) -> list[str] | None:
    """``--devices cuda:0,cuda:1`` as a list; one line naming the flag on a bad entry."""
    if text is None:
        return None
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise UserError("--devices: expected a comma-separated list such as cuda:0,cuda:1")
    for device in devices:
        if not _DEVICE.match(device):
            raise UserError(f"--devices: {device!r} is not a device; expected cpu or cuda:N, "
                            f"e.g. --devices cuda:0,cuda:1")
    return ["cuda:0" if device == "cuda" else device for device in devices]


def device_pool(requested: str, resolved: str, devices: list[str] | None, cuda_count: int) -> list[str]:
    """The devices the workers take in turn (one worker per entry with ``--jobs auto``).

    `requested` is what the suite (or ``--device``) asked for, `resolved` what it means
    here (``auto`` -> ``cuda:0`` or ``cpu``); `cuda_count` is how many GPUs torch sees.
    """
    if devices:
        for device in devices:
            if device.startswith("cuda"):
                index = int(device.split(":")[1])
                if index >= cuda_count:
                    seen = f"cuda:0 to cuda:{cuda_count - 1}" if cuda_count else "none"
                    raise UserError(f"--devices: {device} asked for, but torch sees {cuda_count} "
                                    f"CUDA device(s) ({seen})")
        return list(devices)
    if resolved.startswith("cuda") and requested in ("auto", "cuda"):
        return [f"cuda:{i}" for i in range(max(1, cuda_count))]
    return [resolved]


def worker_devices(requested: str, resolved: str, devices: list[str] | None, jobs: int,
                   cuda_count: int) -> list[str]:
    """The device of each of `jobs` workers: the `device_pool` in turn."""
    chosen = device_pool(requested, resolved, devices, cuda_count)
    return [chosen[i % len(chosen)] for i in range(max(1, jobs))]
