"""Paths in a suite: relative ones resolve against the suite file's folder (as compose and
pyproject files do), errors show the absolute path tried, and a path is never part of a
run's identity: the same data named by a relative or an absolute path, or moved, keeps
its runs, while two folders with different data stay two targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import RANDOM_RESNET
from tlbench.params import Param, resolve_path, resolve_paths


def make_images(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def suite_text(path: str, name: str = "paths", extra: str = "") -> str:
    return f"""
[suite]
name = "{name}"
seeds = [0, 1]
device = "cpu"
{extra}
{RANDOM_RESNET}
[[targets]]
id = "shapes"
plugin = "imagefolder"
path = "{path}"
shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"

[baseline]
enabled = false
"""


# ---------------------------------------------------------------------- the rules


def test_local_paths_resolve_against_the_base_and_identifiers_stay(tmp_path):
    (tmp_path / "data").mkdir()
    local, either = Param(str, path="local"), Param(str, path="local-or-id")
    assert resolve_path(local, "data/x.csv", tmp_path) == (str(tmp_path / "data" / "x.csv"), True)
    assert resolve_path(local, "../up", tmp_path / "data") == (str(tmp_path / "up"), True)
    assert resolve_path(local, "/abs/file", tmp_path) == ("/abs/file", True)
    assert resolve_path(local, "~/x", tmp_path) == (str(Path.home() / "x"), True)
    assert resolve_path(either, "org/name", tmp_path) == ("org/name", False)  # a hub id
    assert resolve_path(either, "data", tmp_path) == (str(tmp_path / "data"), True)  # it exists here
    assert resolve_path(either, "./nowhere", tmp_path) == (str(tmp_path / "nowhere"), True)  # written as a path
    prefixed = Param(str, path="local", path_prefix="dir:")
    assert resolve_path(prefixed, "dir:models/a", tmp_path) == (f"dir:{tmp_path / 'models' / 'a'}", True)
    assert resolve_path(prefixed, "resnet50", tmp_path) == ("resnet50", False)
    assert resolve_path(local, None, tmp_path) == (None, False)


def test_a_path_relative_to_another_parameter_follows_it(tmp_path):
    schema = {"labels": Param(str, None, path="local", relative_to="root"), "root": Param(str, path="local"),
              "lr": Param(float, 0.1)}
    values, paths = resolve_paths(schema, {"root": "data", "labels": "l.csv", "lr": 0.1}, tmp_path)
    assert values == {"root": str(tmp_path / "data"), "labels": str(tmp_path / "data" / "l.csv"), "lr": 0.1}
    assert paths == ("labels", "root")
    values, _ = resolve_paths(schema, {"root": "data", "labels": "/elsewhere/l.csv", "lr": 0.1}, tmp_path)
    assert values["labels"] == "/elsewhere/l.csv"


def test_path_parameters_are_in_the_schema_json():
    assert Param(str, path="local-or-id").to_json()["path"] == "local-or-id"
    with pytest.raises(ValueError, match="Param.path"):
        Param(str, path="folder")


def test_every_built_in_path_parameter_says_so(registry):
    """The parameters that name files or folders, declared as such (so they resolve and stay
    out of identities), and the suite's own."""
    from tlbench.plan.suite import SUITE_KEYS

    declared = {(kind, reg.name, key): param.path for kind in ("source", "target")
                for reg in registry.items(kind) if reg.origin.builtin
                for key, param in reg.item.params.items() if param.path}
    assert declared == {("source", "timm", "model"): "local", ("source", "timm", "file"): "local",
                        ("source", "spectrogram", "model"): "local", ("source", "spectrogram", "file"): "local",
                        ("target", "audiofolder", "path"): "local", ("target", "audiofolder", "labels"): "local",
                        ("source", "hf", "model"): "local-or-id", ("target", "hf-dataset", "path"): "local-or-id",
                        ("target", "imagefolder", "path"): "local", ("target", "imagefolder", "labels"): "local",
                        ("target", "maskfolder", "path"): "local", ("target", "cocofolder", "path"): "local",
                        ("source", "torchvision", "file"): "local"}
    assert SUITE_KEYS["output"].path == SUITE_KEYS["cache_dir"].path == "local"


# ---------------------------------------------------------------------- in a suite


def test_relative_paths_in_a_suite_resolve_against_its_folder(tmp_path, registry, monkeypatch):
    from tlbench.plan.suite import load_suite

    folder = tmp_path / "project" / "suites"
    folder.mkdir(parents=True)
    suite_file = folder / "s.toml"
    suite_file.write_text(suite_text("../data/shapes", extra='cache_dir = "../cache"'))
    monkeypatch.chdir(tmp_path)
    suite = load_suite(Path("project/suites/s.toml"), registry)
    assert suite.targets[0].params["path"] == str(tmp_path / "project" / "data" / "shapes")
    assert suite.targets[0].paths == ("path",) and "path" not in suite.targets[0].identity_params()
    assert suite.cache_dir == tmp_path / "project" / "cache"
    assert suite.output == Path("reports/paths")  # not written in the file: the working directory's
    suite_file.write_text(suite_text("../data/shapes", extra='output = "results"'))
    assert load_suite(suite_file, registry).output == folder / "results"
    assert load_suite(suite_file, registry, output="elsewhere").output == Path("elsewhere")  # --out


def test_errors_show_the_absolute_path_tried(write_suite, cli, tmp_path):
    suite = write_suite(suite_text("shapes"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("run", str(suite), "--dry-run", cwd=elsewhere)
    assert result.returncode == 2
    assert f"path: no directory '{tmp_path / 'shapes'}'" in result.stderr, result.stderr


def test_third_party_path_parameters_resolve_too(tmp_path, registry):
    """A plugin's own path parameter gets the same resolution and stays out of identities."""
    from tlbench.plan.suite import load_suite
    from tlbench.plugins import PluginRegistry

    (tmp_path / "my_paths_plugin.py").write_text('''
import tlbench
from tlbench.api import Strategy
from tlbench.params import Param


class Notes(Strategy):
    name = "with-notes"
    params = {"notes": Param(str, None, "a file of notes", path="local"), "k": Param(int, 1)}


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(Notes())
''')
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        plugins = PluginRegistry.load(["my_paths_plugin"])
        suite_file = tmp_path / "s.toml"
        suite_file.write_text(suite_text("shapes").replace('plugin = "linear-probe"',
                                                           'plugin = "with-notes"\nnotes = "notes.txt"'))
        entry = load_suite(suite_file, plugins).strategies[0]
    finally:
        sys.path.remove(str(tmp_path))
    assert entry.params["notes"] == str(tmp_path / "notes.txt") and entry.identity_params() == {"k": 1}


# ---------------------------------------------------------------------- identity


def _run_ids(suite_file: Path, registry) -> dict:
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    planned = plan(load_suite(suite_file, registry), registry, log=lambda message: None)
    return {(spec.target.id, spec.recipe.id, spec.seed): spec.run_id for spec in planned.specs}


def test_the_same_folder_under_any_spelling_or_place_keeps_its_run_ids(tmp_path, registry, cache_dir):
    data = make_images(tmp_path / "data" / "shapes", {"a": 6, "b": 6})
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(suite_text("data/shapes"))
    relative = _run_ids(suite_file, registry)
    suite_file.write_text(suite_text(str(data)))
    assert _run_ids(suite_file, registry) == relative
    suite_file.write_text(suite_text("./data/../data/shapes"))
    assert _run_ids(suite_file, registry) == relative
    moved = tmp_path / "moved" / "somewhere"
    shutil.move(str(tmp_path / "data"), str(moved))
    (tmp_path / "moved" / "s.toml").write_text(suite_text("somewhere/shapes"))
    assert _run_ids(tmp_path / "moved" / "s.toml", registry) == relative


def test_other_data_under_the_same_parameters_is_another_target(tmp_path, registry, cache_dir):
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    make_images(tmp_path / "one", {"a": 6, "b": 6}, seed=1)
    make_images(tmp_path / "two", {"a": 6, "b": 6, "c": 6}, seed=2)
    text = suite_text("one") + '\n[[targets]]\nid = "other"\nplugin = "imagefolder"\npath = "two"\nshots = 2\n'
    (tmp_path / "s.toml").write_text(text)
    suite = load_suite(tmp_path / "s.toml", registry)
    specs = [spec for spec in plan(suite, registry, log=lambda message: None).specs if spec.seed == 0]
    one, two = (next(s for s in specs if s.target.id == name).identity()["target"] for name in ("shapes", "other"))
    assert one["params"] == two["params"] and one["revision"] != two["revision"]


def test_targets_without_path_parameters_keep_their_identity(write_suite, registry, cache_dir):
    from conftest import THREE_DIGITS
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    suite = load_suite(write_suite(f"[suite]\nname = 'd'\n{RANDOM_RESNET}\n{THREE_DIGITS}\n"
                                   f"[[strategies]]\nplugin = 'linear-probe'\n"), registry)
    identity = plan(suite, registry, log=lambda message: None).specs[0].identity()
    assert set(identity["target"]) == {"plugin", "version", "params", "content_hash"}


def test_run_from_another_directory_and_renamed_spelling_reruns_nothing(tmp_path, cli):
    """The issue's end-to-end case: a suite with a relative path works from anywhere, and
    naming the same folder another way finds every run done."""
    make_images(tmp_path / "project" / "shapes", {"a": 6, "b": 6})
    suite_file = tmp_path / "project" / "s.toml"
    suite_file.write_text(suite_text("shapes"))
    out = tmp_path / "out"
    first = cli("run", str(suite_file), "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    records = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert len(records) == 2
    record = json.loads((out / "runs" / records[0]).read_text())
    assert record["spec"]["target"]["params"]["path"] == str(tmp_path / "project" / "shapes")
    suite_file.write_text(suite_text(str(tmp_path / "project" / "shapes")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = cli("run", str(suite_file), "--out", str(out), cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "2 already done, 0 executed" in again.stdout
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == records
