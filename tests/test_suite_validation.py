"""Malformed suites: each ends with one line naming the file, the key path and what was
expected, exit code 2, and nothing run or written."""

from __future__ import annotations

import pytest

from tlbench.errors import SuiteError
from tlbench.plan.suite import load_suite

GOOD = """
[suite]
name = "tiny"
seeds = [0, 1]

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1, 2]
shots = 3

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1
"""

# (replace this, with that, expected fragments of the one-line message)
BAD = [
    ('name = "tiny"', 'name = "tiny', ["invalid TOML"]),
    ("[suite]", "[suit]", ["suit: unknown section", "did you mean 'suite'"]),
    ('name = "tiny"\n', "", ["suite.name: missing required parameter"]),
    ("seeds = [0, 1]", 'seeds = "0"', ["suite.seeds: expected a list of integers", "got '0'"]),
    ("seeds = [0, 1]", 'seeds = [0, "a"]', ["suite.seeds[1]: expected an integer"]),
    ("seeds = [0, 1]", "seeds = [0, 0]", ["suite.seeds: expected a non-empty list of distinct integers"]),
    ("seeds = [0, 1]", "sedes = [0, 1]", ["suite.sedes: unknown parameter", "did you mean 'seeds'"]),
    ('name = "tiny"', 'name = "tiny"\ndevice = "gpu"', ["suite.device: expected auto, cpu, cuda or cuda:N"]),
    ('name = "tiny"', 'name = "tiny"\ntime_budget_s = -5', ["suite.time_budget_s: expected a number >= 0.001"]),
    ('name = "tiny"', 'name = "a b"', ["suite.name: expected letters, digits"]),
    ("[[sources]]", "[[source]]", ["source: unknown section", "did you mean 'sources'"]),
    ('plugin = "timm"', 'plugin = "timmm"', ["sources[0].plugin: unknown source plugin 'timmm'",
                                            "did you mean 'timm'"]),
    ('plugin = "timm"\n', "", ["sources[0].plugin: missing key"]),
    ('model = "test_resnet"\n', "", ["sources[0].model: missing required parameter"]),
    ("pretrained = false", 'pretrained = "no"', ["sources[0].pretrained: expected true or false"]),
    ("shots = 3", "shots = 0", ["targets[0].shots: expected an integer >= 1"]),
    ("shots = 3", "shot = 3", ["targets[0].shot: unknown parameter", "did you mean 'shots'"]),
    ("epochs = 1", 'epochs = 1\nlr = "fast"', ["strategies[1].lr: expected a number", "got 'fast'"]),
    ("epochs = 1", 'epochs = 1\noptimizer = "adam"', ["strategies[1].optimizer: expected one of 'adamw', 'sgd'"]),
    ("epochs = 1", "epochs = 1\nlearning_rate = 0.1", ["strategies[1].learning_rate: unknown parameter"]),
    ('id = "ft"', 'id = "lp"', ["strategies[1].id: duplicate id 'lp'"]),
    ('plugin = "full-finetune"', 'plugin = "full-finetun"', ["unknown strategy plugin 'full-finetun'",
                                                            "did you mean 'full-finetune'"]),
    ('[[targets]]\nid = "d"\nplugin = "digits"\nclasses = [0, 1, 2]\nshots = 3\n', "",
     ["[[targets]]: missing section"]),
    ("epochs = 1", 'epochs = 1\n[baseline]\nstrategy = "nope"',
     ["baseline.strategy: no strategy entry with id 'nope'"]),
    ("epochs = 1", "epochs = 1\n[baseline]\nenabeld = false", ["baseline.enabeld: unknown key",
                                                               "did you mean 'enabled'"]),
    ("epochs = 1", "epochs = 1\nlr = nan", ["strategies[1].lr: expected a number >= 0", "got nan"]),
    ('name = "tiny"', 'name = "tiny"\ntime_budget_s = nan', ["suite.time_budget_s: expected a number", "got nan"]),
    ("seeds = [0, 1]", "seeds = [0, 4294967296]", ["suite.seeds: expected", "0..4294967295"]),
]


@pytest.mark.parametrize("old,new,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_malformed_suite_gives_one_line(old, new, fragments, write_suite, registry):
    assert old in GOOD
    path = write_suite(GOOD.replace(old, new, 1))
    with pytest.raises(SuiteError) as info:
        load_suite(path, registry)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_good_suite_resolves_defaults(write_suite, registry):
    suite = load_suite(write_suite(GOOD), registry)
    assert suite.name == "tiny" and suite.seeds == (0, 1)
    assert str(suite.output).endswith("reports/tiny")
    ft = suite.strategies[1]
    assert ft.params["epochs"] == 1 and ft.params["lr"] == 1e-3  # given, and a default filled in
    assert suite.baseline is not None and suite.baseline.plugin == "full-finetune"
    assert suite.baseline.params == ft.params  # the suite's own fine-tuning recipe


def test_missing_file(tmp_path, registry):
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "nope.toml", registry)


@pytest.mark.parametrize("old,new,fragment", [
    ("seeds = [0, 1]", 'seeds = "0"', "suite.seeds"),
    ('plugin = "timm"', 'plugin = "timmm"', "did you mean 'timm'"),
    ("epochs = 1", 'epochs = 1\nlr = "fast"', "strategies[1].lr"),
])
def test_cli_exit_2_and_nothing_written(old, new, fragment, write_suite, cli, tmp_path):
    path = write_suite(GOOD.replace(old, new, 1))
    out = tmp_path / "out"
    result = cli("run", str(path), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()


def test_dry_run_prints_matrix(write_suite, cli):
    result = cli("run", str(write_suite(GOOD)), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "6 runs: 4 transfer runs (1 source × 1 target × 2 strategies × 2 seeds) + 2 from-scratch" \
        in result.stdout
    assert result.stdout.count("baseline  ") == 2
