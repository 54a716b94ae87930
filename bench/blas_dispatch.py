"""The probe solver's time when the BLAS libraries take other code paths: does moving
the solver to numpy hold its gain on a CPU the libraries treat differently from this one?

    python bench/blas_dispatch.py [--rounds 2] [--configs NAME,...]

At commit 745b355, on a 2-core AMD EPYC, the probe solver took 1.51x scikit-learn's time, on an
Intel Xeon 0.56x. The probe then ran on torch, whose CPU BLAS is Intel MKL; MKL picks its
code path by CPU vendor as well as by instruction set, OpenBLAS (numpy, scipy, hence
scikit-learn) and numpy's own kernels by instruction set alone. An AMD machine cannot be
had here, so each configuration below restricts, on this machine, the code paths the
libraries may take, through the variables they read at start-up, and reruns the solver
problems of bench/linear_probe.py (the same features, one BLAS thread each, interleaved)
in a fresh process:

- ``as-found``: nothing restricted;
- ``mkl-generic``: MKL_ENABLE_INSTRUCTIONS=SSE4_2, MKL's code path for a CPU it does not
  optimise for (its AVX2/AVX-512 kernels, small-matrix ones included, are not used);
- ``avx2``: every library held to AVX2, the instruction set of AMD Zen 2 and 3
  (MKL_ENABLE_INSTRUCTIONS=AVX2, OPENBLAS_CORETYPE=Haswell, the kernels OpenBLAS picks on
  Zen 2/3, numpy's AVX-512 loops off, ATEN_CPU_CAPABILITY=avx2);
- ``avx2+mkl-generic``: as avx2 but MKL on its generic path: the model of an EPYC if MKL
  treats it as a CPU it does not know;
- ``openblas-generic``: OPENBLAS_CORETYPE=Prescott (SSE3 kernels): if OpenBLAS were the
  library on a slow path, scikit-learn, which uses it too, would share it.

Per configuration it prints the probe's CPU path (numpy, OpenBLAS) against scikit-learn
(target <= 1.0x in every configuration), and for reference the same probe on torch (MKL),
the CPU path of linear-probe v2: median over rounds, wall time, CPU time in brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

AVX2 = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "ATEN_CPU_CAPABILITY": "avx2"}
CONFIGS = {
    "as-found": {},
    "mkl-generic": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": AVX2,
    "avx2+mkl-generic": {**AVX2, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "openblas-generic": {"OPENBLAS_CORETYPE": "Prescott"},
}


def child(path: Path) -> None:
    """Time the solvers on the saved problems; print one JSON object."""
    sys.path.insert(0, str(HERE))
    import machine
    from linear_probe import time_solvers

    with np.load(path) as saved:
        count = int(saved["count"])
        problems = [{key.split("/", 1)[1]: saved[key] for key in saved.files if key.startswith(f"{i}/")}
                    for i in range(count)]
    times = time_solvers(problems)
    described = machine.describe()
    print(json.dumps({"times": {k: {"wall": v["wall"], "cpu": v["cpu"], "accuracy": v["accuracy"]}
                                for k, v in times.items()},
                      "numpy_kernels": described["numpy"].get("architecture"),
                      "scipy_kernels": (described["numpy"].get("scipy") or {}).get("architecture"),
                      "torch_capability": described["torch"]["cpu_capability"]}))


def build_problems(args, folder: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from linear_probe import solver_problems
    from random_weights import save_random_weights

    from tlbench.plugins import PluginRegistry

    weights = save_random_weights(args.model, folder)
    problems = solver_problems(PluginRegistry.load(), args, folder / "cache", weights)
    path = folder / "problems.npz"
    np.savez(path, count=len(problems), **{f"{i}/{k}": v for i, p in enumerate(problems) for k, v in p.items()})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the configurations (median)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights)")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    names = [name.strip() for name in args.configs.split(",")]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise SystemExit(f"blas_dispatch: unknown configuration {unknown[0]!r}; expected some of {', '.join(CONFIGS)}")

    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        path = build_problems(args, Path(tmp))
        runs = {name: [] for name in names}
        for _ in range(args.rounds):  # interleaved: every configuration once per round
            for name in names:
                environment = {key: value for key, value in os.environ.items() if key not in AVX2}
                environment.update(CONFIGS[name])
                out = subprocess.run([sys.executable, __file__, "--child", str(path)], env=environment,
                                     capture_output=True, text=True, check=False)
                if out.returncode:
                    raise SystemExit(f"blas_dispatch: {name}: {out.stderr.strip()[-2000:]}")
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))

    for name in names:
        done = runs[name]

        def median(solver, kind, done=done):
            return float(np.median([run["times"][solver][kind] for run in done]))

        ratio = float(np.median([r["times"]["numpy"]["wall"] / r["times"]["sklearn"]["wall"] for r in done]))
        reference = float(np.median([r["times"]["torch"]["wall"] / r["times"]["sklearn"]["wall"] for r in done]))
        accuracy = np.mean(np.subtract(done[0]["times"]["numpy"]["accuracy"], done[0]["times"]["sklearn"]["accuracy"]))
        kernels = f"OpenBLAS {done[0]['numpy_kernels']}/{done[0]['scipy_kernels']}, ATen {done[0]['torch_capability']}"
        print(f"{ratio:.2f}x  (target <= 1.0x)  solver time, probe on numpy / scikit-learn, {name} "
              f"[{', '.join(f'{k}={v}' for k, v in CONFIGS[name].items()) or 'nothing set'}; {kernels}]: "
              f"numpy {median('numpy', 'wall'):.2f} s ({median('numpy', 'cpu'):.2f}), "
              f"scikit-learn {median('sklearn', 'wall'):.2f} s ({median('sklearn', 'cpu'):.2f}); "
              f"probe on torch (MKL) {reference:.2f}x, {median('torch', 'wall'):.2f} s ({median('torch', 'cpu'):.2f}); "
              f"accuracy numpy - scikit-learn {100 * accuracy:+.2f} points; median of {len(done)}", flush=True)


if __name__ == "__main__":
    main()
