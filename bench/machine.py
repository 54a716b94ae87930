"""What a benchmark figure was measured on: the CPU, torch's and numpy's BLAS, thread counts.

    python bench/machine.py          # a few lines, for people
    python bench/machine.py --json   # one object, for run_all.py

A figure's cost depends on which BLAS library runs it and which code path that library
picks on the CPU at hand (the probe solver on torch's MKL was 0.56x
scikit-learn's time on an Intel Xeon and 1.51x on an AMD EPYC), so every figure is
printed with these. The BLAS libraries are read from torch's build configuration and from
threadpoolctl (numpy's and scipy's OpenBLAS report the kernel architecture they chose);
the environment variables that restrict those choices are listed when set.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys

OVERRIDES = ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE", "OPENBLAS_CORETYPE",
             "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "ATEN_CPU_CAPABILITY")
"""Environment variables that change a BLAS's code path or thread count."""


def cpu() -> dict:
    """Model name, vendor, logical cores, and whether a hypervisor is reported."""
    info = {"model": platform.processor() or platform.machine(), "vendor": None, "cores": os.cpu_count(),
            "virtualised": None}
    try:
        with open("/proc/cpuinfo") as file:
            text = file.read()
    except OSError:
        return info
    fields = dict(re.findall(r"^(model name|vendor_id|flags)\s*:\s*(.*)$", text, re.MULTILINE))
    info["model"] = re.sub(r"\s+", " ", fields.get("model name", info["model"])).strip()
    info["vendor"] = fields.get("vendor_id")
    info["virtualised"] = "hypervisor" in fields.get("flags", "").split()
    return info


def torch_blas() -> dict:
    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: None)()
    return {"version": torch.__version__.split("+")[0], "blas": blas.group(1) if blas else None,
            "blas_version": mkl.group(1) if mkl else None, "threads": torch.get_num_threads(),
            "cpu_capability": capability}


def numpy_blas() -> dict:
    """numpy's and scipy's BLAS as threadpoolctl sees them (name, version, kernels, threads)."""
    import numpy
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import threadpool_info

    found = {}
    for info in threadpool_info():
        if info["user_api"] != "blas":
            continue
        owner = "numpy" if "numpy" in info["filepath"] else "scipy" if "scipy" in info["filepath"] else "other"
        found[owner] = {"blas": info["internal_api"], "blas_version": info.get("version"),
                        "architecture": info.get("architecture"), "threads": info["num_threads"]}
    return {"version": numpy.__version__, **found.get("numpy", {}), "scipy": found.get("scipy")}


def describe() -> dict:
    return {"cpu": cpu(), "python": platform.python_version(), "torch": torch_blas(), "numpy": numpy_blas(),
            "overrides": {name: os.environ[name] for name in OVERRIDES if name in os.environ}}


def short(machine: dict) -> str:
    """One line: CPU model; torch's BLAS and threads; numpy's BLAS, kernels and threads."""
    t, n = machine["torch"], machine["numpy"]
    overrides = "".join(f"; {k}={v}" for k, v in machine["overrides"].items())
    return (f"{machine['cpu']['model']}; torch {t['blas']} ({t['threads']} threads); "
            f"numpy {n.get('blas')} {n.get('architecture') or ''} ({n.get('threads')} threads){overrides}")


def lines(machine: dict) -> list[str]:
    c, t, n = machine["cpu"], machine["torch"], machine["numpy"]
    scipy = n.get("scipy") or {}
    out = [(f"cpu: {c['model']} ({c['vendor']}, {c['cores']} logical cores"
            f"{', virtualised' if c['virtualised'] else ''}); python {machine['python']}"),
           (f"torch {t['version']}: BLAS {t['blas']} {t['blas_version'] or ''}, {t['threads']} threads, "
            f"ATen CPU capability {t['cpu_capability']}"),
           (f"numpy {n['version']}: BLAS {n.get('blas')} {n.get('blas_version')} ({n.get('architecture')} kernels), "
            f"{n.get('threads')} threads; scipy: BLAS {scipy.get('blas')} {scipy.get('blas_version')} "
            f"({scipy.get('architecture')} kernels), {scipy.get('threads')} threads")]
    if machine["overrides"]:
        out.append("set: " + ", ".join(f"{k}={v}" for k, v in machine["overrides"].items()))
    return out


def main() -> None:
    machine = describe()
    if "--json" in sys.argv[1:]:
        print(json.dumps(machine))
    else:
        print("\n".join(lines(machine)))


if __name__ == "__main__":
    main()
