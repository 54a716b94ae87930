"""The `segmentation` task: mIoU from one confusion matrix over the split, checked
against torchmetrics; masks of any size; the conformance kit on digit scenes."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import TargetInfo
from tlbench.testing import check_strategy, check_task

SCENES = {"n_scenes": 120, "n_test": 40, "n_train": 24, "n_val": 16, "canvas": 16, "max_scale": 10,
          "task": "segmentation", "classes": [0, 1, 7]}


def task():
    from tlbench_builtin.segmentation import Segmentation

    return Segmentation()


def info(k: int) -> TargetInfo:
    return TargetInfo(task="segmentation", num_classes=k, class_names=tuple(map(str, range(k))), modality="image")


def test_miou_is_torchmetrics_jaccard_over_the_whole_split_with_ignored_pixels():
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex, MulticlassAccuracy

    rng = np.random.default_rng(0)
    k = 5
    labels = [rng.integers(0, k, size=(12, 9)).astype(np.uint8) for _ in range(6)]
    for mask in labels[:3]:
        mask[:2] = 255  # ignored
    predictions = [np.where(rng.random(m.shape) < 0.6, m, rng.integers(0, k, m.shape)).astype(np.uint8) % k
                   for m in labels]
    scores = task().score(predictions, labels, info(k))
    metric = MulticlassJaccardIndex(num_classes=k, average="macro", ignore_index=255)
    accuracy = MulticlassAccuracy(num_classes=k, average="micro", ignore_index=255)
    for predicted, truth in zip(predictions, labels):  # accumulated over the split, not averaged per batch
        metric.update(torch.from_numpy(predicted.astype(np.int64))[None], torch.from_numpy(truth.astype(np.int64))[None])
        accuracy.update(torch.from_numpy(predicted.astype(np.int64))[None],
                        torch.from_numpy(truth.astype(np.int64))[None])
    assert scores["mIoU"] == pytest.approx(float(metric.compute()), abs=1e-6)
    assert scores["pixel_accuracy"] == pytest.approx(float(accuracy.compute()), abs=1e-6)
    # a mean of per-image mIoUs is another number: the split's matrix is what is scored
    per_image = np.mean([task().score([p], [t], info(k))["mIoU"] for p, t in zip(predictions, labels)])
    assert abs(per_image - scores["mIoU"]) > 1e-4


def test_predictions_at_the_input_size_are_resized_to_each_masks_size():
    truth = np.zeros((4, 6), dtype=np.uint8)
    truth[:, 3:] = 1
    prediction = np.repeat(np.repeat(truth, 2, axis=0), 2, axis=1)  # the same mask at twice the size
    assert task().score([prediction], [truth], info(2)) == {"mIoU": 1.0, "pixel_accuracy": 1.0}
    other = np.zeros((10, 10), dtype=np.uint8)
    scores = task().score([prediction, other], [truth, np.ones((5, 5), dtype=np.uint8)], info(2))
    assert scores["pixel_accuracy"] == pytest.approx(24 / 49)


@pytest.mark.parametrize("labels, message", [
    ([np.full((3, 3), 4, dtype=np.uint8)], "example 0 has class 4"),
    ([np.zeros((3, 3), dtype=np.float32)], "integer class ids"),
    ([np.zeros(3, dtype=np.uint8)], r"\(height, width\) mask"),
])
def test_bad_masks_are_one_line(labels, message):
    with pytest.raises(ValueError, match=message):
        task().check_labels(labels, info(3), "train")


def test_the_loss_reads_masks_of_different_sizes():
    import torch

    from tlbench_builtin.segmentation import SegmentationObjective

    objective = SegmentationObjective(3)
    masks = [np.zeros((8, 8), dtype=np.uint8), np.ones((5, 7), dtype=np.uint8), np.full((8, 8), 255, np.uint8)]
    targets = objective.targets(masks)
    assert [tuple(t.shape) for t in targets] == [(8, 8), (5, 7), (8, 8)]
    logits = torch.zeros(3, 3, 16, 16, requires_grad=True)
    loss = objective.loss(logits, targets)
    assert float(loss.detach()) == pytest.approx(np.log(3), rel=1e-5)  # uniform logits; the ignored mask counts nothing
    loss.backward()
    assert objective.predictions(logits.detach()).shape == (3, 16, 16)


def test_segmentation_conforms_on_digit_scenes(cache_dir):
    scores = check_task("segmentation", target="digit-scenes", target_params=SCENES, cache_dir=cache_dir)
    assert set(scores) == {"mIoU", "pixel_accuracy"}
    check = check_strategy("full-finetune", {"epochs": 2, "batch_size": 8}, target=("digit-scenes", SCENES),
                           cache_dir=cache_dir)
    metrics = check.record["metrics"]
    assert 0 <= metrics["test_mIoU"] <= 1 and metrics["overfitting_gap"] is not None
    assert check.record["task"]["headline"] == "mIoU"
