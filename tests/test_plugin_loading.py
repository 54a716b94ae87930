"""Loading third-party plugins that are broken: each is a real distribution (a
``.dist-info`` with an ``entry_points.txt``) made in a temporary directory on
PYTHONPATH, and `tlbench list` runs in a subprocess, as a user would run it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli


def make_dist(site: Path, name: str, version: str, modules: dict[str, str],
              entry_points: dict[str, str] | None = None) -> Path:
    """Install a distribution by hand: modules plus metadata that importlib.metadata reads."""
    site.mkdir(parents=True, exist_ok=True)
    for module, code in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    points = entry_points if entry_points is not None else {m.replace("_", "-"): m for m in modules}
    (info / "entry_points.txt").write_text(
        "[tlbench]\n" + "".join(f"{ep} = {target}\n" for ep, target in points.items()), encoding="utf-8")
    return info


TARGET = """
import tlbench
from tlbench.api import Target


class Named(Target):
    version = "1"
    description = "a target registered by a test plugin"

    def __init__(self, name):
        self.name = name
"""


@pytest.fixture
def site(tmp_path) -> Path:
    return tmp_path / "site"


def tlbench(site: Path, *args: str, **env: str):
    return run_cli(*args, env={"PYTHONPATH": str(site), "TLBENCH_STRICT_PLUGINS": "", "TLBENCH_PLUGINS": "",
                               "TLBENCH_DISABLE_PLUGINS": "", **env}, timeout=300)


def warnings_about(result, plugin: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if f"plugin {plugin!r}" in line]


def listed(site: Path, **env) -> dict:
    result = tlbench(site, "list", "--json", **env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return {kind: {entry["name"]: entry for entry in data[kind]} for kind in ("sources", "targets", "strategies")}


def assert_strict_error(site: Path, expected: str) -> None:
    result = tlbench(site, "list", TLBENCH_STRICT_PLUGINS="1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tlbench: error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# ---------------------------------------------------------------------- broken plugins


def test_plugin_raising_on_import_is_reported_and_skipped(site):
    make_dist(site, "broken-import", "1.0", {"boom": "raise RuntimeError('needs a driver\\nthat is missing')\n"})
    result = tlbench(site, "list")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert warnings_about(result, "boom") == [
        "tlbench: warning: plugin 'boom' (broken-import 1.0): failed to import: "
        "RuntimeError: needs a driver that is missing; skipped"]
    assert "digits" in result.stdout  # the rest of tlbench works
    assert_strict_error(site, "plugin 'boom' (broken-import 1.0): failed to import: RuntimeError")


def test_plugin_exiting_on_import_does_not_end_tlbench(site):
    make_dist(site, "broken-exit", "2.0", {"quitter": "import sys\nsys.exit(3)\n"})
    result = tlbench(site, "list")
    assert result.returncode == 0
    assert warnings_about(result, "quitter") == [
        "tlbench: warning: plugin 'quitter' (broken-exit 2.0): failed to import: SystemExit: 3; skipped"]


def test_duplicate_name_is_reported_and_the_first_registration_kept(site):
    make_dist(site, "dup-dist", "0.3", {"dup": TARGET + """
@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Named("digits"))
    register(Named("dup-unique"))
"""})
    result = tlbench(site, "list")
    assert result.returncode == 0
    assert warnings_about(result, "dup") == [
        "tlbench: warning: plugin 'dup' (dup-dist 0.3): target name 'digits' is already registered by "
        "plugin 'digits' (built-in); this target is skipped"]
    targets = listed(site)["targets"]
    assert targets["digits"]["origin"] == "built-in"
    assert targets["dup-unique"]["origin"] == "dup-dist 0.3"
    assert_strict_error(site, "plugin 'dup' (dup-dist 0.3): target name 'digits' is already registered")


def test_duplicate_between_two_third_party_plugins_is_stable(site):
    """The winner does not depend on sys.path order: distributions load in name order."""
    for dist in ("zeta-dist", "alpha-dist"):
        module = dist.replace("-", "_")
        make_dist(site, dist, "1.0", {module: TARGET + """
@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Named("shared-name"))
"""})
    result = tlbench(site, "list", "--json")
    assert json.loads(result.stdout)["targets"][[e["name"] for e in json.loads(result.stdout)["targets"]].index(
        "shared-name")]["origin"] == "alpha-dist 1.0"
    assert warnings_about(result, "zeta-dist") == [
        "tlbench: warning: plugin 'zeta-dist' (zeta-dist 1.0): target name 'shared-name' is already "
        "registered by plugin 'alpha-dist' (alpha-dist 1.0); this target is skipped"]


def test_misspelled_hook_names_the_closest_real_hook_and_skips_the_plugin(site):
    make_dist(site, "typo-dist", "1.2", {"typo": TARGET + """
@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Named("from-typo-plugin"))


@tlbench.hookimpl
def tlbench_register_strategy(register):
    pass
"""})
    result = tlbench(site, "list")
    assert result.returncode == 0
    assert warnings_about(result, "typo") == [
        "tlbench: warning: plugin 'typo' (typo-dist 1.2): implements unknown hook 'tlbench_register_strategy' "
        "(did you mean 'tlbench_register_strategies'?); skipped"]
    assert "from-typo-plugin" not in result.stdout  # the whole plugin is skipped
    assert_strict_error(site, "unknown hook 'tlbench_register_strategy' (did you mean "
                              "'tlbench_register_strategies'?)")


@pytest.mark.parametrize("code, message", [
    ("def tlbench_register_sourcse(register):\n    pass\n",
     "implements unknown hook 'tlbench_register_sourcse' (did you mean 'tlbench_register_sources'?)"),
    ("def tlbnech_register_targets(register):\n    pass\n",
     "implements unknown hook 'tlbnech_register_targets' (did you mean 'tlbench_register_targets'?)"),
    ("def tlbench_register_targets(register):\n    pass\n",
     "defines tlbench_register_targets without the @tlbench.hookimpl marker, so tlbench would never call it"),
    ("import tlbench\n@tlbench.hookimpl\ndef tlbench_register_targets(reg):\n    pass\n",
     "tlbench_register_targets takes unknown argument(s) 'reg'; the hook is tlbench_register_targets(register)"),
], ids=["unmarked-typo", "typo-in-prefix", "no-marker", "wrong-argument"])
def test_hooks_tlbench_would_never_call_are_reported(site, code, message):
    make_dist(site, "hooky", "0.1", {"hooky": code})
    result = tlbench(site, "list")
    assert result.returncode == 0
    assert warnings_about(result, "hooky") == [f"tlbench: warning: plugin 'hooky' (hooky 0.1): {message}; skipped"]


def test_hook_raising_is_reported_and_its_items_skipped(site):
    make_dist(site, "raiser", "1.0", {"raiser": TARGET + """
@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Named("half-registered"))
    raise KeyError("config")
"""})
    result = tlbench(site, "list")
    assert warnings_about(result, "raiser") == [
        "tlbench: warning: plugin 'raiser' (raiser 1.0): tlbench_register_targets failed: KeyError: 'config'; "
        "its targets are skipped"]
    assert "half-registered" not in result.stdout


def test_same_entry_point_name_in_two_distributions(site):
    make_dist(site, "first-dist", "1.0", {"first_mod": TARGET}, {"clash": "first_mod"})
    make_dist(site, "second-dist", "1.0", {"second_mod": TARGET}, {"clash": "second_mod"})
    result = tlbench(site, "list")
    assert result.returncode == 0
    assert warnings_about(result, "clash") == [
        "tlbench: warning: plugin 'clash' (second-dist 1.0): plugin name 'clash' is already used by "
        "plugin 'clash' (first-dist 1.0); skipped"]


# ---------------------------------------------------------------------- disabling


def test_disable_plugins_by_name_or_distribution(site):
    make_dist(site, "broken-import", "1.0", {"boom": "raise RuntimeError('boom')\n"})
    make_dist(site, "typo-dist", "1.2",
              {"typo": "import tlbench\n@tlbench.hookimpl\ndef tlbench_register_x(register):\n    pass\n"})
    make_dist(site, "fine-dist", "1.0", {"fine": TARGET + """
@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Named("fine-target"))
"""})
    result = tlbench(site, "list", TLBENCH_DISABLE_PLUGINS="boom, typo-dist", TLBENCH_STRICT_PLUGINS="1")
    assert result.returncode == 0, result.stderr
    assert "boom" not in result.stderr and "typo" not in result.stderr
    assert "fine-target" in result.stdout

    blocked = tlbench(site, "list", TLBENCH_DISABLE_PLUGINS="boom,typo,fine,digits")
    assert "fine-target" not in blocked.stdout and "boom" not in blocked.stderr
    assert "  digits " not in blocked.stdout  # built-ins can be blocked too


def test_disabled_name_that_matches_nothing_is_reported(site):
    result = tlbench(site, "list", TLBENCH_DISABLE_PLUGINS="digts")
    assert result.returncode == 0
    assert ("tlbench: warning: TLBENCH_DISABLE_PLUGINS: no plugin or distribution is named 'digts' "
            "(did you mean 'digits', 'digit-scenes', 'spoken-digits'?)") in result.stderr.splitlines()


def test_a_suite_naming_a_disabled_plugin_says_so(site, write_suite):
    suite = write_suite("""
        [suite]
        name = "s"
        [baseline]
        enabled = false
        [[sources]]
        plugin = "timm"
        model = "test_resnet"
        [[targets]]
        plugin = "digits"
        [[strategies]]
        plugin = "linear-probe"
    """)
    result = tlbench(site, "run", str(suite), "--dry-run", TLBENCH_DISABLE_PLUGINS="digits")
    assert result.returncode == 2
    assert "unknown target plugin 'digits'" in result.stderr and "TLBENCH_DISABLE_PLUGINS blocks digits" \
        in result.stderr


# ---------------------------------------------------------------------- modules and identity


def test_module_plugins_from_tlbench_plugins_are_checked_too(site):
    site.mkdir()
    (site / "local_plugin.py").write_text("raise ImportError('no such thing')\n", encoding="utf-8")
    result = tlbench(site, "list", TLBENCH_PLUGINS="local_plugin")
    assert warnings_about(result, "local_plugin") == [
        "tlbench: warning: plugin 'local_plugin' (module local_plugin): failed to import: "
        "ImportError: no such thing; skipped"]


def test_a_module_named_twice_loads_once(site):
    """A built-in module named again by TLBENCH_PLUGINS is the same plugin, not a duplicate."""
    result = tlbench(site, "list", TLBENCH_PLUGINS="tlbench_builtin.digits", TLBENCH_STRICT_PLUGINS="1")
    assert result.returncode == 0, result.stderr


VERSIONED = TARGET + """
from tlbench.api import FitResult, Strategy


class Prior(Strategy):
    name = "class-prior"
    version = "1"
    description = "predicts the training class frequencies (a test strategy)"
    frozen_features_only = True

    def fit(self, params, run):
        import numpy as np

        counts = np.bincount(run.split("train").labels, minlength=run.num_classes) + 1.0
        logits = {name: np.tile(np.log(counts / counts.sum()), (len(run.split(name)), 1))
                  for name in ("train", "val", "test")}
        total = sum(p.numel() for p in run.source.backbone.parameters())
        return FitResult(logits=logits, trainable_params=0, total_params=total)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(Prior())
"""

PRIOR_SUITE = """
[suite]
name = "versions"
device = "cpu"
[baseline]
enabled = false
[[sources]]
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 8
[[targets]]
plugin = "digits"
classes = [0, 1]
shots = 3
val_shots = 2
[[strategies]]
plugin = "class-prior"
"""


def test_upgrading_a_plugin_distribution_reruns_its_runs(site, write_suite, tmp_path, cache_dir):
    info = make_dist(site, "prior-plugin", "1.0", {"prior": VERSIONED})
    suite, out = write_suite(PRIOR_SUITE), tmp_path / "out"

    def run() -> tuple[str, set[str]]:
        result = tlbench(site, "run", str(suite), "--out", str(out), "--executor", "inline",
                         TLBENCH_CACHE_DIR=str(cache_dir))
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout, {path.stem for path in (out / "runs").glob("*.json")}

    first, ids = run()
    assert "1 runs planned: 0 already done, 1 executed" in first
    second, same_ids = run()
    assert "1 runs planned: 1 already done, 0 executed" in second and same_ids == ids

    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prior-plugin\nVersion: 1.1\n", encoding="utf-8")
    info.rename(site / "prior_plugin-1.1.dist-info")
    upgraded, all_ids = run()
    assert "1 runs planned: 0 already done, 1 executed" in upgraded
    [new_id] = all_ids - ids
    record = json.loads((out / "runs" / f"{new_id}.json").read_text())
    assert record["spec"]["strategy"]["version"] == "1 (prior-plugin 1.1)"
    assert "(" not in record["spec"]["source"]["version"]  # built-in items keep their own versions


def test_a_module_the_suite_names_must_load(write_suite, cli):
    """A broken entry-point plugin is skipped with a warning, but a module the suite
    itself asks for is part of the suite: without it the suite is an error."""
    from conftest import RANDOM_RESNET, THREE_DIGITS

    suite = write_suite('[suite]\nname = "asks"\nplugins = ["no_such_tlbench_plugin"]\n' + RANDOM_RESNET
                        + THREE_DIGITS + '\n[[strategies]]\nid = "lp"\nplugin = "linear-probe"\n')
    result = cli("run", str(suite), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tlbench: error: {suite}: suite.plugins: plugin 'no_such_tlbench_plugin' (module no_such_tlbench_plugin): "
        f"failed to import: ModuleNotFoundError: No module named 'no_such_tlbench_plugin'"]

