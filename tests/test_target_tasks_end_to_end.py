"""Multilabel and regression targets of `hf-dataset` and `imagefolder` through the
planner (label checks, content hashes, run identities) and through `tlbench run`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import RANDOM_RESNET

N_IMAGES = 24


def png(rng) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four small data sets: a parquet of images with a list of tags per image
    (multilabel), a folder of images with a labels CSV of one value each (regression),
    a CSV of texts with two values each (regression), and class folders (classification)."""
    from datasets import ClassLabel, Dataset, Features, Image, Sequence

    root = tmp_path_factory.mktemp("task-data")
    rng = np.random.default_rng(0)
    features = Features({"image": Image(), "tags": Sequence(ClassLabel(names=["sky", "sea", "sand"]))})
    Dataset.from_dict({"image": [{"bytes": png(rng), "path": None} for _ in range(N_IMAGES)],
                       "tags": [[k for k in range(3) if (i % 7 + 1) >> k & 1] for i in range(N_IMAGES)]},
                      features=features).to_parquet(str(root / "tagged.parquet"))
    (root / "photos").mkdir()
    for i in range(N_IMAGES):
        (root / "photos" / f"{i:02d}.png").write_bytes(png(rng))
    pd.DataFrame({"file": [f"{i:02d}.png" for i in range(N_IMAGES)],
                  "brightness": [i / 10 for i in range(N_IMAGES)]}).to_csv(root / "photos" / "labels.csv", index=False)
    pd.DataFrame({"text": [f"review number {i}" for i in range(40)], "stars": [i % 5 + 0.5 for i in range(40)],
                  "length": [float(i) for i in range(40)]}).to_csv(root / "reviews.csv", index=False)
    for name in ("a", "b"):
        (root / "classes" / name).mkdir(parents=True)
        for i in range(5):
            (root / "classes" / name / f"{i}.png").write_bytes(png(rng))
    return root


def suite_text(data: Path, targets: str, strategies: str, seeds: str = "[0]") -> str:
    return f"""
[suite]
name = "tasks"
seeds = {seeds}
device = "cpu"
{RANDOM_RESNET}
{targets.format(data=data)}
{strategies}
"""


TARGETS = """
[[targets]]
id = "tags"
plugin = "hf-dataset"
path = "{data}/tagged.parquet"
task = "multilabel"
n_train = 12

[[targets]]
id = "bright"
plugin = "imagefolder"
path = "{data}/photos"
task = "regression"
labels = "labels.csv"
n_train = 12

[[targets]]
id = "reviews"
plugin = "hf-dataset"
path = "{data}/reviews.csv"
task = "regression"
label_columns = ["stars", "length"]
n_train = 20

[[targets]]
id = "plain"
plugin = "imagefolder"
path = "{data}/classes"
"""

PROBE = """
[[strategies]]
id = "lp"
plugin = "linear-probe"
"""


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_planner_checks_and_hashes_the_new_tasks(data, write_suite, registry, cache_dir, hf_offline):
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    suite = load_suite(write_suite(suite_text(data, TARGETS, PROBE, seeds="[0, 1]")), registry)
    planned = plan(suite, registry, log=lambda line: None)
    runs = {(spec.target.id, spec.seed): spec for spec in planned.specs if not spec.baseline}
    assert set(runs) == {(t, s) for t in ("tags", "bright", "reviews", "plain") for s in (0, 1)}
    assert {runs[t, 0].task["name"] for t in ("tags", "bright", "reviews", "plain")} == \
        {"multilabel", "regression", "classification"}
    assert runs["tags", 0].content_hash != runs["tags", 1].content_hash  # seeded draws
    # new parameters at their defaults stay out of run identities: classification runs keep their ids
    entries = {entry.id: entry for entry in suite.targets}
    assert not {"task", "labels", "label_columns"} & set(entries["plain"].identity_params())
    assert "task" in entries["bright"].identity_params()
    assert {"task", "label_columns"} <= set(entries["reviews"].identity_params())
    # paths (the folder, the labels file) are not identity: the content hash and the revision are
    assert entries["bright"].paths == ("labels", "path") and entries["reviews"].paths == ("path",)
    assert entries["bright"].params["labels"] == str(data / "photos" / "labels.csv")
    identity = runs["bright", 0].identity()["target"]
    assert "path" not in identity["params"] and identity["revision"].startswith("labels-sha256:")


def test_the_planner_refuses_shots_for_a_regression_target_before_reading_it(data, write_suite, registry, cache_dir):
    from tlbench.errors import UserError
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    targets = """
[[targets]]
id = "bright"
plugin = "imagefolder"
path = "{data}/photos"
task = "regression"
labels = "labels.csv"
shots = 2
"""
    suite = load_suite(write_suite(suite_text(data, targets, PROBE)), registry)
    with pytest.raises(UserError, match=r"targets\[0\] \(bright\): shots: per-class draws need one class per "
                                        r"example.*n_train"):
        plan(suite, registry, log=lambda line: None)


STRATEGIES = """
[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""


def test_tlbench_run_on_an_image_regression_target(data, write_suite, cli, tmp_path):
    targets = """
[[targets]]
id = "bright"
plugin = "imagefolder"
path = "{data}/photos"
task = "regression"
labels = "labels.csv"
n_train = 12
"""
    out = tmp_path / "out"
    done = cli("run", str(write_suite(suite_text(data, targets, STRATEGIES))), "--out", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    records = [json.loads(path.read_text()) for path in (out / "runs").glob("*.json")]
    assert len(records) == 3 and all(record["status"] == "ok" for record in records)  # lp, ft, the baseline
    for record in records:
        assert record["task"]["name"] == "regression", record["task"]
        assert np.isfinite(record["metrics"]["test_r2"]) and record["metrics"]["test_rmse"] >= 0
    assert "bright" in (out / "leaderboard.md").read_text()
