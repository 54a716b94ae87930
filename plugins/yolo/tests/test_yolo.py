"""The `yolo` source: ultralytics' YOLOv8n built from its yaml config, offline (random
weights; a "pretrained" checkpoint is a seeded random network saved as ultralytics
saves its own). Its maps and levels, a fresh Detect head per run with only the class
branch new, ultralytics' loss and NMS in tlbench's detection protocol, the conformance
kit, and an end-to-end `tlbench run` scored by tlbench's own COCO mAP.

ultralytics writes its settings file where ``YOLO_CONFIG_DIR`` says when it is first
imported, and looks for the network unless ``YOLO_OFFLINE`` is set: both are set (to a
temporary folder, and on) before anything imports it, and passed to the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="tlbench-yolo-settings-"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

pytest.importorskip("ultralytics", reason="ultralytics (AGPL-3.0) is not installed: pip install -e plugins/yolo")
pytest.importorskip("tlbench_yolo", reason="the tlbench-yolo plugin is not installed: pip install -e plugins/yolo")

import torch  # noqa: E402

from tlbench.api import Env, TargetInfo  # noqa: E402
from tlbench.errors import ParamError, ResourceUnavailable  # noqa: E402
from tlbench.params import resolve_params  # noqa: E402
from tlbench_yolo.source import YoloSource  # noqa: E402

SIZE = 64
THREE = TargetInfo(task="detection", num_classes=3, class_names=("a", "b", "c"), modality="image")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A YOLOv8n checkpoint as ultralytics stores its own (``{"model": DetectionModel}``),
    with seeded random weights: what ``yolov8n.pt`` is, without the download."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("yolo") / "yolov8n-random.pt"
    torch.save({"model": DetectionModel("yolov8n.yaml", verbose=False)}, path)
    return path


def _build(params: dict, tmp: Path, pretrained: bool = True):
    source = YoloSource()
    resolved = resolve_params(source.params, params, "test")
    env = Env(cache_dir=tmp / "cache", log=lambda message: None)
    source.check(resolved, env)
    source.prepare(resolved, env)
    return source.build(resolved, env, pretrained=pretrained)


@pytest.fixture(scope="module")
def built(checkpoint, tmp_path_factory):
    return _build({"model": "yolov8n.pt", "file": str(checkpoint), "input_size": SIZE},
                  tmp_path_factory.mktemp("build"))


def _images(n: int = 2):
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (90, 70, 3), dtype=np.uint8) for _ in range(n)]


def test_the_backbone_gives_the_maps_the_detect_head_reads(built, checkpoint):
    assert [(level.channels, level.stride) for level in built.feature_levels] == [(64, 8), (128, 16), (256, 32)]
    images = built.encode_whole(_images())
    assert images.shape == (2, 3, SIZE, SIZE) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    built.backbone.eval()
    with torch.no_grad():
        maps = built.backbone.forward_feature_maps(images)
        pooled = built.backbone(images)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    assert torch.allclose(pooled, maps[-1].mean(dim=(2, 3))) and built.feature_dim == 256
    # the maps are the ones ultralytics' own forward hands its Detect head
    network = torch.load(checkpoint, weights_only=False)["model"].eval()
    detect = network.model[-1]
    seen = {}
    detect.register_forward_pre_hook(lambda module, args: seen.setdefault("maps", args[0]))
    with torch.no_grad():
        network(images)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(maps, seen["maps"]))
    # the weights are the checkpoint's; layer groups are its layers up to the neck's last, in order
    state = network.state_dict()
    assert all(torch.equal(tensor, state[name]) for name, tensor in built.backbone.state_dict().items())
    assert built.layer_groups[0][0].startswith("model.0.") and built.layer_groups[-1][0].startswith("model.21.")
    assert sorted(n for g in built.layer_groups for n in g) == sorted(n for n, _ in built.backbone.named_parameters())


def test_each_head_is_a_fresh_detect_with_only_the_class_branch_new(built, checkpoint):
    state = torch.load(checkpoint, weights_only=False)["model"].state_dict()
    first, second = built.task_heads["detection"](3), built.task_heads["detection"](3)
    assert not {id(p) for p in first.parameters()} & {id(p) for p in second.parameters()}
    assert not {id(p) for p in first.parameters()} & {id(p) for p in built.backbone.parameters()}
    detect = first.detect
    assert detect.nc == 3 and detect.no == 3 + 4 * detect.reg_max
    new = {f"cv3.{i}.{len(level) - 1}.{kind}" for i, level in enumerate(detect.cv3) for kind in ("weight", "bias")}
    for name, tensor in detect.state_dict().items():
        if name in new:  # the class-specific convolutions: 3 outputs, biases as ultralytics' bias_init sets them
            assert tensor.shape[0] == 3 and state[f"model.22.{name}"].shape[0] == 80
        else:  # box (and DFL) branch and the class branch's inner layers: the source's own
            assert torch.equal(tensor, state[f"model.22.{name}"]), name
    import math

    for i, level in enumerate(detect.cv3):
        expected = math.log(5 / 3 / (640 / float(detect.stride[i])) ** 2)
        assert torch.allclose(level[-1].bias, torch.full((3,), expected))
    maps = [torch.zeros(1, c, SIZE // s, SIZE // s) for c, s in ((64, 8), (128, 16), (256, 32))]
    raw = first(maps).raw
    assert raw["scores"].shape == (1, 3, 64 + 16 + 4)


def _objective():
    from tlbench_builtin.detection import Detection

    return Detection().objective(THREE, None)


def test_the_loss_is_ultralytics_finite_and_trains_with_an_image_without_boxes(built):
    head = built.task_heads["detection"](3)
    head.train()
    built.backbone.train()
    outputs = head(built.backbone.forward_feature_maps(built.encode_whole(_images())))
    assert outputs.input_size == (SIZE, SIZE) and len(outputs) == 2
    labels = [{"boxes": [[5.0, 5.0, 40.0, 30.0], [30.0, 50.0, 60.0, 85.0]], "classes": [1, 2], "size": (90, 70)},
              {"boxes": torch.zeros(0, 4).numpy(), "classes": [], "size": (90, 70)}]
    objective = _objective()
    parts = outputs.losses([{"boxes": t["boxes"] * SIZE, "labels": t["labels"]} for t in objective.targets(labels)])
    assert set(parts) == {"box_loss", "cls_loss", "dfl_loss"} and all(torch.isfinite(v) for v in parts.values())
    loss = objective.loss(outputs, objective.targets(labels))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    for module in (head.detect.cv3[0][-1], head.detect.cv2[0][-1], built.backbone.model[0].conv):
        assert module.weight.grad is not None and torch.isfinite(module.weight.grad).all()
    built.backbone.zero_grad()
    empty = head(built.backbone.forward_feature_maps(built.encode_whole(_images())))
    nothing = objective.loss(empty, objective.targets([labels[1], labels[1]]))  # no box in the batch
    assert torch.isfinite(nothing)
    nothing.backward()


def test_detections_are_ultralytics_nms_in_input_pixels(built):
    head = built.task_heads["detection"](3)
    with torch.no_grad():  # a confident class branch, so that many boxes pass the score threshold
        for level in head.detect.cv3:
            level[-1].bias.fill_(2.0)
    built.backbone.eval()
    head.eval()
    with torch.no_grad():
        evaluated = head(built.backbone.forward_feature_maps(built.encode_whole(_images())))
    assert evaluated.decoded is not None  # eval mode: Detect decoded them itself
    from tlbench_yolo.model import YoloOutputs

    by_hand = YoloOutputs(head, evaluated.raw, evaluated.input_size, len(evaluated))  # as training mode gives them
    assert by_hand.decoded is None
    for detections in (evaluated.detections(), by_hand.detections()):
        assert len(detections) == 2
        for found in detections:
            assert 0 < len(found["boxes"]) <= 100 and found["boxes"].shape[1] == 4
            assert (found["scores"] >= 0.05).all() and found["labels"].dtype == torch.int64
            assert ((found["labels"] >= 0) & (found["labels"] < 3)).all()
            boxes = found["boxes"]
            assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= SIZE).all() and (boxes[:, [1, 3]] <= SIZE).all()
            assert (boxes[:, 2:] >= boxes[:, :2]).all()
    for a, b in zip(evaluated.detections(), by_hand.detections()):  # the same decoding either way
        assert torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"], atol=1e-4)
    predictions = _objective().predictions(evaluated)  # as fractions of the image, as the task scores them
    assert all((p["boxes"] <= 1.0).all() and (p["boxes"] >= 0.0).all() for p in predictions)


def test_missing_weights_and_contradicting_params_are_refused_in_one_line(tmp_path, monkeypatch):
    source = YoloSource()
    env = Env(cache_dir=tmp_path)
    monkeypatch.chdir(tmp_path)  # no yolov8s.pt in the working folder
    with pytest.raises(ResourceUnavailable) as caught:
        source.check(resolve_params(source.params, {"model": "yolov8s.pt"}, "test"), env)
    message = str(caught.value)
    assert "\n" not in message and "YOLO_OFFLINE is set" in message and "set file = <a local weights file>" in message
    with pytest.raises(ParamError, match="is a config, whose network has random weights; set pretrained = false"):
        source.check(resolve_params(source.params, {"model": "yolov8n.yaml"}, "test"), env)
    with pytest.raises(ParamError, match="multiple of 32"):
        source.check(resolve_params(source.params, {"model": "yolov8n.yaml", "pretrained": False,
                                                    "input_size": 100}, "test"), env)
    with pytest.raises(ParamError, match="ultralytics has no config 'yolov99q.yaml'"):
        source.check(resolve_params(source.params, {"model": "yolov99q.yaml", "pretrained": False}, "test"), env)
    with pytest.raises(ResourceUnavailable, match="does not exist"):
        source.check(resolve_params(source.params, {"model": "yolov8n.pt", "file": str(tmp_path / "no.pt")},
                                    "test"), env)
    wrong = tmp_path / "wrong.pt"
    torch.save({"x": torch.zeros(1)}, wrong)
    with pytest.raises(ResourceUnavailable, match="the weights do not fit ultralytics' yolov8n.pt"):
        _build({"model": "yolov8n.pt", "file": str(wrong), "input_size": SIZE}, tmp_path)


def test_the_conformance_kit_passes(checkpoint, tmp_path):
    from tlbench.testing import check_source

    model = check_source("yolo", {"model": "yolov8n.pt", "file": str(checkpoint), "input_size": SIZE},
                         cache_dir=tmp_path)
    assert model.pretrained and model.meta["weights"] == "file"
    check_source("yolo", {"model": "yolov8n.yaml", "pretrained": False, "input_size": SIZE}, cache_dir=tmp_path)


SUITE = """
[suite]
name = "yolo"
seeds = [0]
device = "cpu"

[[sources]]
id = "yolov8n"
plugin = "yolo"
model = "yolov8n.yaml"
pretrained = false
input_size = 64

[[targets]]
id = "boxes"
plugin = "digit-scenes"
task = "detection"
classes = [0, 1, 7]
n_scenes = 60
n_test = 12
n_train = 16
n_val = 8

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""

WALL_TIMES: dict[str, float] = {}
"""Measured wall times (the README quotes them; pytest -s prints them)."""


def test_a_suite_runs_end_to_end_and_tlbench_scores_its_mAP(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    env = {**os.environ, "TLBENCH_CACHE_DIR": str(tmp_path / "cache")}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tlbench.cli", "run", str(suite), "--out", str(out)], env=env,
                            capture_output=True, text=True, timeout=900)
    WALL_TIMES["end-to-end run"] = time.perf_counter() - started
    print(f"\nyolo end-to-end `tlbench run`: {WALL_TIMES['end-to-end run']:.1f} s wall")
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    # the fine-tuning run and the suite's from-scratch baseline of the same architecture
    assert {r["spec"]["strategy"]["id"] for r in records} == {"ft", "scratch-ft"}
    print("test_mAP:", {r["spec"]["strategy"]["id"]: r["metrics"]["test_mAP"] for r in records})
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert record["metrics"]["test_mAP"] is not None and 0.0 <= record["metrics"]["test_mAP"] <= 1.0
