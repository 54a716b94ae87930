"""`tlbench run --dry-run`, and every real run before its first run, check what can be
checked cheaply and offline: model names against timm's registry, local files, the hub
cache when the hub is off, target parameters against the loaded data, and the headers
of the image files the seeds' splits draw. Every problem is one line, every wrong entry
is reported, the exit code is 2 and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PROBE_AND_FINETUNE, RANDOM_RESNET, THREE_DIGITS


def make_images(root, counts: dict[str, int], seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i:02d}.png")


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("tlbench: warning:")]


BROKEN = """
[suite]
name = "broken"
seeds = [0, 1]
device = "cpu"

[[sources]]
id = "typo"
plugin = "timm"
model = "test_resnett"
pretrained = false

[[sources]]
id = "weights"
plugin = "timm"
model = "test_resnet"
file = "weights/missing.safetensors"

[[targets]]
id = "shapes"
plugin = "imagefolder"
path = "shapes"

[[strategies]]
id = "lp"
plugin = "linear-probe"
"""


def test_a_misspelled_model_a_missing_weights_file_and_an_unreadable_image_are_three_lines(
        write_suite, cli, tmp_path):
    make_images(tmp_path / "shapes", {"circle": 6, "square": 6})
    (tmp_path / "shapes" / "square" / "03.png").write_bytes(b"not a png at all")
    suite = write_suite(BROKEN)
    out = tmp_path / "out"
    result = cli("run", str(suite), "--dry-run", "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = errors(result)
    assert len(lines) == 3 and all(line.startswith(f"tlbench: error: {suite}: ") for line in lines), result.stderr
    assert "sources[0] (typo): model: timm has no architecture 'test_resnett'" in lines[0]
    assert "did you mean 'test_resnet'" in lines[0]
    assert f"sources[1] (weights): file: weights file '{tmp_path / 'weights' / 'missing.safetensors'}' " \
           f"does not exist" in lines[1]
    assert f"targets[0] (shapes): image {tmp_path / 'shapes' / 'square' / '03.png'} cannot be read" in lines[2]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()


def test_a_real_run_refuses_the_same_suite_before_its_first_run(write_suite, cli, tmp_path):
    make_images(tmp_path / "shapes", {"circle": 6, "square": 6})
    (tmp_path / "shapes" / "square" / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n but cut short")
    suite = write_suite(BROKEN.replace('"test_resnett"', '"test_resnet"').replace(
        'file = "weights/missing.safetensors"', "pretrained = false\ninput_size = 32"))
    out = tmp_path / "out"
    result = cli("run", str(suite), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = errors(result)
    assert "targets[0] (shapes): image" in line and "03.png cannot be read" in line
    assert not list(out.rglob("*.json"))


def test_only_the_images_the_splits_draw_are_read(write_suite, cli, tmp_path, registry, cache_dir):
    """An unreadable image that no seed's split draws stops nothing: the folder is not decoded."""
    from tlbench.api import Env
    from tlbench.params import resolve_params

    make_images(tmp_path / "shapes", {"circle": 10, "square": 10})
    item = registry.get("target", "imagefolder").item
    params = resolve_params(item.params, {"path": str(tmp_path / "shapes"), "shots": 1}, "test")
    data = item.load(params, Env(cache_dir=cache_dir))
    drawn = {p for seed in (0, 1) for _, split in data.splits(seed).items() for p in split.examples}
    unused = sorted(set(data.files["train"]) - drawn)
    unused[0].write_bytes(b"never read")
    suite = write_suite(f"""
        [suite]
        name = "few"
        seeds = [0, 1]
        {RANDOM_RESNET}
        [[targets]]
        id = "shapes"
        plugin = "imagefolder"
        path = "shapes"
        shots = 1
        [[strategies]]
        plugin = "linear-probe"
    """)
    assert cli("run", str(suite), "--dry-run").returncode == 0
    drawn_one = sorted(drawn)[0]
    drawn_one.write_bytes(b"read, and refused")
    result = cli("run", str(suite), "--dry-run")
    assert result.returncode == 2 and f"image {drawn_one} cannot be read" in errors(result)[0], result.stderr


def test_target_parameters_are_checked_against_the_data(write_suite, cli):
    suite = write_suite(f"""
        [suite]
        name = "digits"
        {RANDOM_RESNET}
        [[targets]]
        id = "eleven"
        plugin = "digits"
        classes = [0, 11]
        [[targets]]
        id = "greedy"
        plugin = "digits"
        classes = [0, 1]
        shots = 200
        {PROBE_AND_FINETUNE}
    """)
    result = cli("run", str(suite), "--dry-run")
    assert result.returncode == 2
    first, second = errors(result)
    assert "targets[0] (eleven): classes: expected distinct digits 0-9, got [0, 11]" in first
    assert "targets[1] (greedy): shots: class 0 has" in second and "too few for 200 shots" in second


def test_labels_the_task_cannot_take_are_named_by_the_dry_run(write_suite, cli, tmp_path):
    """A regression labels file with a missing value: found by loading the data, offline."""
    import pandas as pd

    make_images(tmp_path / "photos", {"all": 8})
    files = sorted(p.relative_to(tmp_path / "photos").as_posix() for p in (tmp_path / "photos").rglob("*.png"))
    pd.DataFrame({"file": files, "y": [1.0] * 7 + [None]}).to_csv(tmp_path / "photos" / "values.csv", index=False)
    suite = write_suite(f"""
        [suite]
        name = "values"
        {RANDOM_RESNET}
        [[targets]]
        id = "values"
        plugin = "imagefolder"
        path = "photos"
        task = "regression"
        labels = "values.csv"
        [[strategies]]
        plugin = "full-finetune"
    """)
    result = cli("run", str(suite), "--dry-run")
    assert result.returncode == 2
    [line] = errors(result)
    assert "targets[0] (values): labels:" in line and "missing label" in line


def test_the_dry_run_builds_no_model_and_writes_nothing(write_suite, cli, tmp_path, cache_dir):
    suite = write_suite(f"""
        [suite]
        name = "fine"
        seeds = [0, 1]
        {RANDOM_RESNET}
        {THREE_DIGITS}
        {PROBE_AND_FINETUNE}
    """)
    result = cli("run", str(suite), "--dry-run", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "6 runs: 4 transfer runs" in result.stdout
    assert not (tmp_path / "out").exists()
    # the cache holds only the listing of timm's model names it checked against (no weights, no features)
    written = sorted(str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*") if p.is_file())
    assert len(written) == 1 and written[0].startswith("timm/names-") and written[0].endswith(".json")


def test_a_hub_data_set_not_cached_is_left_to_the_real_run(tmp_path, monkeypatch, cache_dir):
    """Online, a hub data set still to download is not fetched by the dry run."""
    pytest.importorskip("datasets")
    from tlbench.api import Env
    from tlbench.params import resolve_params
    from tlbench_builtin.hf_dataset import HFDataset

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    item = HFDataset()
    params = resolve_params(item.params, {"path": "example-org/not-here"}, "test")
    assert item.load_offline(params, Env(cache_dir=cache_dir)) is None


def test_several_problems_are_one_exception_with_every_line(write_suite, registry, cache_dir, tmp_path):
    from tlbench.errors import UserError
    from tlbench.plan.checks import SuiteProblems
    from tlbench.plan.planner import check_suite, plan
    from tlbench.plan.suite import load_suite

    suite = load_suite(write_suite(BROKEN), registry)
    for check in (check_suite, plan):
        with pytest.raises(SuiteProblems) as caught:
            check(suite, registry, lambda message: None)
        assert isinstance(caught.value, UserError) and len(caught.value.problems) == 3
        assert [str(p).split(": ")[1] for p in caught.value.problems] == \
            ["sources[0] (typo)", "sources[1] (weights)", "targets[0] (shapes)"]
