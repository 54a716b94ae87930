"""Linear-probe settings the solver cannot use are suite errors before any run: `tlbench
run --dry-run` ends with one line naming the strategy entry and the key, exit code 2.

The schema only says "a list of numbers"; `linear-probe` and `lp-ft` check in `check`
that the L2 grid is a non-empty list of positive, finite strengths and that the
tolerance is positive, instead of every run failing (an empty grid) or being recorded
as ok with an unconverged solve (a negative strength).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import RANDOM_RESNET, THREE_DIGITS

SUITE = """
[suite]
name = "probe-params"
seeds = [0]
""" + RANDOM_RESNET + THREE_DIGITS + """
[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1

[[strategies]]
id = "probe"
plugin = "{plugin}"
{setting}
"""

BAD = [
    ("linear-probe", "l2_grid = []", "l2_grid: expected a non-empty list of positive numbers, got []"),
    ("linear-probe", "l2_grid = [0.1, -0.01]", "l2_grid[1]: expected a positive number (an L2 strength), got -0.01"),
    ("linear-probe", "l2_grid = [0.0]", "l2_grid[0]: expected a positive number (an L2 strength), got 0.0"),
    ("linear-probe", "l2_grid = [inf]", "l2_grid[0]: expected a positive number (an L2 strength), got inf"),
    ("linear-probe", "tol = 0.0", "tol: expected a positive number, got 0.0"),
    ("lp-ft", "probe_l2_grid = []", "probe_l2_grid: expected a non-empty list of positive numbers, got []"),
    ("lp-ft", "probe_l2_grid = [1e-3, -1.0]", "probe_l2_grid[1]: expected a positive number (an L2 strength), "
                                             "got -1.0"),
    ("lp-ft", "probe_tol = 0", "probe_tol: expected a positive number, got 0.0"),
]


@pytest.mark.parametrize("plugin, setting, message", BAD, ids=[f"{p}:{s}" for p, s, _ in BAD])
def test_bad_probe_settings_end_a_dry_run_with_one_line(cli, write_suite, plugin, setting, message):
    path = write_suite(SUITE.format(plugin=plugin, setting=setting))
    out = cli("run", str(path), "--dry-run")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == [f"tlbench: error: {path}: strategies[1] (probe): {message}"]
    assert out.stdout == ""  # nothing planned, nothing listed


@pytest.mark.parametrize("setting, message", [
    ("l2_grid = [nan]", "strategies[1].l2_grid[0]: expected a number, got nan"),
    ("tol = nan", "strategies[1].tol: expected a number >= 0, got nan"),
])
def test_nan_is_refused_by_the_parameter_schema(cli, write_suite, setting, message):
    path = write_suite(SUITE.format(plugin="linear-probe", setting=setting))
    out = cli("run", str(path), "--dry-run")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"tlbench: error: {path}: {message}"]


@pytest.mark.parametrize("plugin, setting", [
    ("linear-probe", ""), ("linear-probe", "l2_grid = [1e-2]\ntol = 1e-6\nmax_iter = 5"),
    ("lp-ft", "probe_l2_grid = [0.5, 1e-5]"),
])
def test_good_probe_settings_pass_a_dry_run(cli, write_suite, plugin, setting):
    out = cli("run", str(write_suite(SUITE.format(plugin=plugin, setting=setting))), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "2 transfer runs" in out.stdout


@pytest.mark.parametrize("grid", [[], [0.1, -0.01], [float("nan")]])
def test_the_solver_itself_refuses_strengths_it_cannot_use(grid):
    """Called directly (not through a suite), the solver fails instead of returning a fit."""
    from tlbench_builtin.linear_solvers import fit_probe

    x, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="l2_grid must be a non-empty list of positive strengths"):
        fit_probe(x, y, x, lambda outputs: 0.0, loss="softmax", num_classes=2, l2_grid=grid)
