"""The `detection` task: COCO mAP by faster-coco-eval (checked against torchmetrics),
labels refused in one line, and torchvision's FCOS trained on a source's feature maps."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import FeatureLevel, TargetInfo
from tlbench_builtin.detection import Detection, coco_ground_truth, coco_map, coco_results, make_head

INFO = TargetInfo(task="detection", num_classes=3, class_names=("a", "b", "c"), modality="image")


def _labels(rng, n=30):
    """Images of mixed sizes with 0-4 boxes each (some with none)."""
    labels = []
    for i in range(n):
        height, width = int(rng.integers(24, 80)), int(rng.integers(24, 80))
        m = 0 if i % 7 == 0 else int(rng.integers(1, 5))
        x0, y0 = rng.uniform(0, width * 0.6, m), rng.uniform(0, height * 0.6, m)
        w, h = rng.uniform(4, width * 0.4, m), rng.uniform(4, height * 0.4, m)
        boxes = np.stack([x0, y0, np.minimum(x0 + w, width), np.minimum(y0 + h, height)], 1).astype(np.float32)
        labels.append({"boxes": boxes.reshape(-1, 4), "classes": rng.integers(0, 3, m), "size": (height, width)})
    return labels


def _noisy_predictions(rng, labels):
    """Jittered true boxes, some with the wrong class, plus false positives; as the task's
    predictions (boxes as fractions of the image)."""
    out = []
    for label in labels:
        height, width = label["size"]
        boxes = label["boxes"] + rng.normal(0, 1, label["boxes"].shape)
        extra = rng.uniform(0, 1, (2, 4)) * [width, height, width, height]
        extra = np.concatenate([extra[:, :2].clip(max=extra[:, 2:] - 1), extra[:, 2:]], 1)
        boxes = np.concatenate([boxes, extra]).astype(np.float32)
        classes = np.concatenate([np.where(rng.uniform(size=len(label["classes"])) < 0.2,
                                           (label["classes"] + 1) % 3, label["classes"]), rng.integers(0, 3, 2)])
        out.append({"boxes": boxes / np.array([width, height, width, height], dtype=np.float32),
                    "scores": rng.uniform(0.05, 1, len(boxes)).astype(np.float32), "classes": classes})
    return out


def test_map_equals_torchmetrics_mean_average_precision():
    torch = pytest.importorskip("torch")
    detection_metrics = pytest.importorskip("torchmetrics.detection")
    rng = np.random.default_rng(0)
    labels = _labels(rng)
    predictions = _noisy_predictions(rng, labels)
    ours = Detection().score(predictions, labels, INFO)
    # COCO's thresholds as pycocotools builds them (float64): torchmetrics' defaults come
    # from a float32 linspace, whose 0.55 or 0.3 sit a hair above COCO's, which moves
    # its mAP by about 4e-4 here
    metric = detection_metrics.MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
        iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(), rec_thresholds=np.linspace(0, 1, 101).tolist())
    for predicted, label in zip(predictions, labels):
        height, width = label["size"]
        scale = np.array([width, height, width, height], dtype=np.float32)
        metric.update([{"boxes": torch.tensor(predicted["boxes"] * scale), "scores": torch.tensor(predicted["scores"]),
                        "labels": torch.tensor(predicted["classes"])}],
                      [{"boxes": torch.tensor(label["boxes"]), "labels": torch.tensor(label["classes"])}])
    theirs = metric.compute()
    assert 0.1 < ours["mAP"] < 0.9  # a real test: neither nothing nor everything found
    assert ours["mAP"] == pytest.approx(float(theirs["map"]), abs=1e-6)
    assert ours["mAP_50"] == pytest.approx(float(theirs["map_50"]), abs=1e-6)
    assert ours["mAP_75"] == pytest.approx(float(theirs["map_75"]), abs=1e-6)


def test_true_boxes_score_one_and_no_boxes_at_all_score_nothing():
    labels = _labels(np.random.default_rng(1))
    perfect = [{"boxes": label["boxes"] / np.array([label["size"][1], label["size"][0]] * 2, dtype=np.float32),
                "scores": np.ones(len(label["boxes"]), dtype=np.float32), "classes": label["classes"]}
               for label in labels]
    assert Detection().score(perfect, labels, INFO) == {"mAP": 1.0, "mAP_50": 1.0, "mAP_75": 1.0}
    empty = [{"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
              "classes": np.zeros(0, np.int64)} for _ in labels]
    assert Detection().score(empty, labels, INFO) == {"mAP": 0.0, "mAP_50": 0.0, "mAP_75": 0.0}
    no_boxes = [{**label, "boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int64)}
                for label in labels]
    assert Detection().score(perfect, no_boxes, INFO) == {"mAP": None, "mAP_50": None, "mAP_75": None}


def test_saved_results_use_the_datas_own_ids_and_pixels():
    labels = [{"boxes": np.array([[10, 20, 30, 60]], np.float32), "classes": np.array([1]), "size": (100, 50),
               "image_id": 42}]
    predictions = [{"boxes": np.array([[0.2, 0.2, 0.6, 0.6]], np.float32), "scores": np.array([0.9], np.float32),
                    "classes": np.array([1])}]
    info = TargetInfo(task="detection", num_classes=2, class_names=("x", "y"), modality="image", class_ids=(3, 17))
    saved = Detection().saved_predictions(predictions, labels, info)
    assert saved == [{"image_id": 42, "category_id": 17, "bbox": pytest.approx([10.0, 20.0, 20.0, 40.0]),
                      "score": pytest.approx(0.9)}]
    truth = coco_ground_truth(labels, 2)
    assert truth["annotations"][0]["bbox"] == [10.0, 20.0, 20.0, 40.0]
    assert coco_map(truth, coco_results(predictions, labels))["mAP_50"] == 1.0  # IoU of [10,20,30,60] and itself


@pytest.mark.parametrize("label, message", [
    ({"boxes": [[5, 5, 5, 9]], "classes": [0], "size": (10, 10)}, "is not x0 < x1"),
    ({"boxes": [[1, 1, 4, 4]], "classes": [3], "size": (10, 10)}, "class 3 is not an integer in 0...2"),
    ({"boxes": [[1, 1, 4, 4]], "classes": [0]}, "expected a dict with 'boxes', 'classes' and 'size'"),
    ({"boxes": [[1, 1, 4, 4]], "classes": [0, 1], "size": (10, 10)}, "expected boxes (m, 4) and classes (m,)"),
    ({"boxes": [[1, 1, 4, 4]], "classes": [0], "size": (0, 10)}, "size must be (height, width)"),
])
def test_bad_labels_are_refused_in_one_line(label, message):
    with pytest.raises(ValueError) as caught:
        Detection().check_labels([label], INFO, "train")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("train labels: example 0")


def test_fcos_on_feature_maps_trains_and_decodes_into_the_image():
    import torch

    torch.manual_seed(0)
    levels = [FeatureLevel(16, 4), FeatureLevel(24, 8), FeatureLevel(32, 16), FeatureLevel(48, 32)]
    head = make_head(levels, 3)
    objective = Detection().objective(INFO, None)
    maps = [torch.randn(2, level.channels, 64 // level.stride, 64 // level.stride, requires_grad=True)
            for level in levels]
    labels = [{"boxes": np.array([[8, 8, 40, 30]], np.float32), "classes": np.array([2]), "size": (128, 96)},
              {"boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int64), "size": (50, 70)}]
    targets = objective.targets(labels)
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[8 / 96, 8 / 128, 40 / 96, 30 / 128]]))
    outputs = head(maps)
    assert outputs.input_size == (64, 64) and len(outputs) == 2
    assert len(outputs.per_level) == 5  # the three levels of stride >= 8, then P6 and P7
    loss = objective.loss(outputs, targets)
    loss.backward()
    assert torch.isfinite(loss) and maps[1].grad is not None and maps[0].grad is None  # P3 onwards only
    head.eval()
    with torch.no_grad():
        predictions = objective.predictions(head(maps))
    assert len(predictions) == 2
    for predicted in predictions:
        assert len(predicted["boxes"]) <= 100 and (predicted["scores"] > 0.05).all()
        assert (predicted["boxes"] >= 0).all() and (predicted["boxes"] <= 1).all()
    Detection().check_predictions(predictions, 2, INFO)
