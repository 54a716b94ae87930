"""The `torchvision` source: COCO detectors and segmentation models whose transfer keeps
the pyramid and box head (or the decoder) and replaces only the class-specific
predictor; weights from a local file or torch hub's cache, refused offline in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import resolve_params
from tlbench_builtin.torchvision_source import TorchvisionSource, _network


def torchvision_weights_file(tmp: Path, model: str, classes: int) -> str:
    """A whole torchvision model's state dict, as COCO-trained weights would be stored,
    but random (seeded), in a local .pth file."""
    torch.manual_seed(0)
    path = tmp / f"{model}.pth"
    if not path.exists():
        torch.save(_network(model, classes, frozen_norm=True).state_dict(), path)
    return str(path)


def _build(params: dict, tmp: Path, pretrained: bool = True):
    source = TorchvisionSource()
    resolved = resolve_params(source.params, params, "test")
    env = Env(cache_dir=tmp / "cache")
    source.check(resolved, env)
    source.prepare(resolved, env)
    return source.build(resolved, env, pretrained=pretrained)


@pytest.mark.parametrize("model", ["fcos_resnet50_fpn", "retinanet_resnet50_fpn_v2"])
def test_a_detector_transfers_its_pyramid_and_head_with_a_fresh_predictor(model, tmp_path):
    file = torchvision_weights_file(tmp_path, model, 91)
    state = torch.load(file, weights_only=True)
    built = _build({"model": model, "file": file, "input_size": 128}, tmp_path)
    assert [(level.channels, level.stride) for level in built.feature_levels] == [(512, 8), (1024, 16), (2048, 32)]
    assert built.layer_groups[0][0].startswith("body.conv1") and len(built.layer_groups) == 5
    head = built.task_heads["detection"](3)
    kept = head.detector.state_dict()  # the pyramid (backbone.fpn.*) and head (head.*), named as in the model
    assert any(name.startswith("backbone.fpn.") for name in kept) and any(name.startswith("head.") for name in kept)
    for name, tensor in kept.items():
        if "cls_logits" in name:  # new, for 3 classes
            assert tensor.shape[0] == 3 * head.detector.head.classification_head.num_anchors
            assert state[name].shape != tensor.shape
        else:
            assert torch.equal(state[name], tensor), name
    images = built.encode_whole([torch.randint(0, 255, (90, 70, 3), dtype=torch.uint8).numpy()] * 2)
    assert images.shape == (2, 3, 128, 128)
    outputs = head(built.backbone.forward_feature_maps(images))
    assert outputs.input_size == (128, 128)
    from tlbench_builtin.detection import Detection

    from tlbench.api import TargetInfo

    info = TargetInfo(task="detection", num_classes=3, class_names=("a", "b", "c"), modality="image")
    objective = Detection().objective(info, None)
    labels = [{"boxes": [[5.0, 5.0, 40.0, 30.0]], "classes": [1], "size": (90, 70)},
              {"boxes": torch.zeros(0, 4).numpy(), "classes": [], "size": (90, 70)}]
    loss = objective.loss(outputs, objective.targets(labels))
    loss.backward()
    assert torch.isfinite(loss)
    assert head.detector.head.classification_head.cls_logits.weight.grad is not None
    # the pretrained backbone keeps its batch-norm statistics: frozen, as torchvision trains detectors
    from torchvision.ops.misc import FrozenBatchNorm2d

    assert isinstance(built.backbone.body.bn1, FrozenBatchNorm2d)
    random = _build({"model": model, "pretrained": False, "input_size": 128}, tmp_path)
    assert isinstance(random.backbone.body.bn1, torch.nn.BatchNorm2d) and random.weights_id != built.weights_id


def test_a_segmentation_model_transfers_its_decoder_with_a_fresh_classifier(tmp_path):
    file = torchvision_weights_file(tmp_path, "fcn_resnet50", 21)
    state = torch.load(file, weights_only=True)
    built = _build({"model": "fcn_resnet50", "file": file, "input_size": 64}, tmp_path)
    assert [(level.channels, level.stride) for level in built.feature_levels] == [(2048, 8)]
    head = built.task_heads["segmentation"](4)
    for name, tensor in head.classifier.state_dict().items():
        if name.startswith("4."):  # the final 1x1 convolution: new, for 4 classes
            assert tensor.shape[0] == 4
        else:
            assert torch.equal(state[f"classifier.{name}"], tensor), name
    logits = head(built.backbone.forward_feature_maps(torch.zeros(2, 3, 64, 64)))
    assert logits.shape == (2, 4, 64, 64)


def test_weights_not_cached_offline_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = TorchvisionSource()
    params = resolve_params(source.params, {"model": "fcos_resnet50_fpn"}, "test")
    with pytest.raises(ResourceUnavailable) as caught:
        source.check(params, Env(cache_dir=tmp_path))
    message = str(caught.value)
    assert "FCOS_ResNet50_FPN_Weights.COCO_V1" in message and "not in torch hub's cache" in message
    assert "\n" not in message and "set file = <a local state dict>" in message
    with pytest.raises(ParamError, match="torchvision has no 'COCO_V9' for fcos_resnet50_fpn; its weights: DEFAULT, "
                                         "COCO_V1"):
        source.check(resolve_params(source.params, {"model": "fcos_resnet50_fpn", "weights": "COCO_V9"}, "test"),
                     Env(cache_dir=tmp_path))
    wrong = tmp_path / "wrong.pth"
    torch.save({"x": torch.zeros(1)}, wrong)
    with pytest.raises(ResourceUnavailable, match="the weights do not fit torchvision's fcos_resnet50_fpn"):
        _build({"model": "fcos_resnet50_fpn", "file": str(wrong), "input_size": 64}, tmp_path)


SUITE = """
[suite]
name = "tv"
seeds = [0]
device = "cpu"

[[sources]]
id = "fcos"
plugin = "torchvision"
model = "fcos_resnet50_fpn"
file = "{file}"
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
id = "frozen"
plugin = "partial-finetune"
train_last = 0
epochs = 1
batch_size = 8
lr = 1e-3
"""


def test_a_coco_detector_runs_end_to_end_with_its_scratch_baseline(tmp_path, cli):
    file = torchvision_weights_file(tmp_path, "fcos_resnet50_fpn", 91)
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(file=file))
    out = tmp_path / "out"
    result = cli("run", str(suite), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert {r["spec"]["strategy"]["id"] for r in records} == {"frozen", "scratch-full-finetune"}
    for record in records:
        assert record["status"] == "ok" and record["metrics"]["test_mAP"] is not None
