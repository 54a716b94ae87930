"""Detection through tlbench against torchvision's FCOS trained by a plain loop, and the cost of mAP.

    python bench/detection.py [--repeats 3] [--epochs 10] [--threads 1] [--images 5000]

The run: timm's `test_resnet` at input 32 (random weights saved to a local file), the
`digit-scenes` detection target (160 training and 50 validation scenes of the seed, 400
test scenes; digits 0-9), `full-finetune` for `--epochs` epochs at lr 1e-3 in batches of
16, AdamW with weight decay 0.05 (none on norms and biases), one epoch of warm-up then
cosine, the validation mAP after every epoch and the best epoch kept, seed 0. The plain
side builds the same network by hand, as a torchvision user writes it: timm's
`features_only` maps of stride 8, 16 and 32, torchvision's `FeaturePyramidNetwork` with
P6/P7 and `FCOS` (its own transform, loss and decoding through `model(images, targets)`),
trained on the very same scenes with the same schedule, and scored with faster-coco-eval.
Both run on the same number of torch threads, in this process, in interleaved pairs
after a warm-up of each.

Prints one line per figure, the figure first and its target next to it:

1. in-process wall time, tlbench / plain (median over the pairs of the per-pair ratio);
2. test mAP of each side (different random heads: the same mAP within noise expected);
3. the cost of scoring `--images` test images (COCO mAP by faster-coco-eval over the
   predictions of a random-init detector, 100 boxes per image, the worst case) against
   the test pass that predicted them (tlbench's `predict`, decoding included), and
   against a test pass of torchvision's FCOS ResNet-50 at 512 pixels over as many images
   (timed on 16, extrapolated): the tiny CNN at 32 pixels makes its own pass unusually
   cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from random_weights import save_random_weights

INPUT_SIZE, BATCH_SIZE, LR, WEIGHT_DECAY = 32, 16, 1e-3, 0.05
SCENES = {"task": "detection", "n_train": 160, "n_val": 50}

SUITE = """
[suite]
name = "bench-detection"
seeds = [{seed}]
device = "cpu"
time_budget_s = 1800

[[sources]]
id = "test_resnet"
plugin = "timm"
model = "test_resnet"
file = "{weights}"
input_size = 32

[[targets]]
id = "digit-boxes"
plugin = "digit-scenes"
task = "detection"
n_train = 160
n_val = 50

[[strategies]]
id = "full-finetune"
plugin = "full-finetune"
epochs = {epochs}
lr = 1e-3
batch_size = 16

[baseline]
enabled = false
"""


def scenes(seed: int):
    """The digit scenes of tlbench's target (the same splits), as plain arrays."""
    from tlbench.api import Env
    from tlbench.params import resolve_params
    from tlbench_builtin.digit_scenes import DigitScenes

    params = resolve_params(DigitScenes.params, SCENES, "bench")
    return DigitScenes().load(params, Env(cache_dir=Path(tempfile.gettempdir()))).scenes(seed)


def plain_fcos(weights: Path, num_classes: int):
    """timm features -> torchvision FPN (P3-P7) -> torchvision FCOS, as written by hand."""
    import timm
    import torch
    from safetensors.torch import load_file
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOS, FCOSHead
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

    body = timm.create_model("test_resnet", pretrained=False, features_only=True, out_indices=(2, 3, 4))
    state = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("fc.")}
    body.load_state_dict(state, strict=False)

    class Backbone(torch.nn.Module):
        out_channels = 128

        def __init__(self):
            super().__init__()
            self.body = body
            self.fpn = FeaturePyramidNetwork(body.feature_info.channels(), 128,
                                             extra_blocks=LastLevelP6P7(128, 128))

        def forward(self, x):
            from collections import OrderedDict

            return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(self.body(x))))

    config = timm.data.resolve_model_data_config(body)
    anchors = AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5)
    return FCOS(Backbone(), num_classes, min_size=INPUT_SIZE, max_size=INPUT_SIZE, image_mean=list(config["mean"]),
                image_std=list(config["std"]), anchor_generator=anchors, head=FCOSHead(128, 1, num_classes),
                score_thresh=0.05, nms_thresh=0.6, detections_per_img=100)


def coco_map(model, images, labels) -> float:
    """COCO mAP@[.5:.95] of `model` on images (faster-coco-eval, written out by hand)."""
    import torch
    from faster_coco_eval import COCO, COCOeval_faster

    model.eval()
    with torch.no_grad():
        detections = [d for i in range(0, len(images), 64) for d in model(images[i:i + 64])]
    truth = {"images": [], "annotations": [], "categories": [{"id": k + 1} for k in range(10)]}
    results = []
    for i, (label, found) in enumerate(zip(labels, detections)):
        truth["images"].append({"id": i + 1, "height": INPUT_SIZE, "width": INPUT_SIZE})
        for box, cls in zip(label["boxes"].tolist(), label["labels"].tolist()):
            truth["annotations"].append({"id": len(truth["annotations"]) + 1, "image_id": i + 1, "iscrowd": 0,
                                         "category_id": cls + 1, "bbox": [box[0], box[1], box[2] - box[0],
                                                                          box[3] - box[1]],
                                         "area": (box[2] - box[0]) * (box[3] - box[1])})
        for box, score, cls in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):
            results.append({"image_id": i + 1, "category_id": cls + 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    if not results:
        return 0.0
    gt = COCO(truth)
    evaluation = COCOeval_faster(gt, gt.loadRes(results), iouType="bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return max(float(evaluation.stats[0]), 0.0)


def plain_run(weights: Path, seed: int, epochs: int) -> tuple[float, float]:
    """(seconds, test mAP) of the hand-written loop."""
    import random

    import numpy as np
    import torch

    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    parts = scenes(seed)

    def tensors(split):
        images = [torch.from_numpy(s.image).float().div(255).expand(3, -1, -1).contiguous() for s in parts[split]]
        labels = [{"boxes": torch.from_numpy(s.boxes).float(), "labels": torch.from_numpy(s.labels)}
                  for s in parts[split]]
        return images, labels

    data = {split: tensors(split) for split in ("train", "val", "test")}
    model = plain_fcos(weights, 10)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".bias")]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=LR)
    images, labels = data["train"]
    steps = math.ceil(len(images) / BATCH_SIZE)
    total, warmup = epochs * steps, steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / warmup if step < warmup else
                                                  0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) /
                                                                                    max(1, total - warmup)))))
    generator = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator).tolist()
        for i in range(0, len(order), BATCH_SIZE):
            index = order[i:i + BATCH_SIZE]
            losses = model([images[j] for j in index], [labels[j] for j in index])
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()
            scheduler.step()
        score = coco_map(model, *data["val"])
        if score > best:
            best, best_state = score, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return time.perf_counter() - start, coco_map(model, *data["test"])


def tlbench_run(suite_path: Path, folder: Path, registry, count: int, threads: int) -> tuple[float, float]:
    from tlbench.plan.suite import load_suite
    from tlbench.runner import run_suite

    out = folder / f"inproc-{count}"
    start = time.perf_counter()
    summary = run_suite(load_suite(suite_path, registry, output=out), registry, executor="inline",
                        threads=threads, log=lambda message: None)
    seconds = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    if summary.ok != 1 or len(records) != 1:
        raise SystemExit(f"the tlbench run failed: {summary.failed}")
    return seconds, records[0]["metrics"]["test_mAP"]


def test_pass(plugin: str, source_settings: dict, n_images: int, threads: int):
    """(seconds, predictions, labels, target info) of tlbench's `predict` over `n_images`
    digit scenes, with a detection head on the source `plugin` built from `source_settings`
    (its weights as the settings say)."""
    import torch

    from tlbench.api import Env
    from tlbench.params import resolve_params
    from tlbench.plugins import PluginRegistry
    from tlbench.training import TaskModel, engine_defaults, predict, supervised_target
    from tlbench_builtin.digit_scenes import DigitScenes

    torch.set_num_threads(threads)
    registry = PluginRegistry.load()
    env = Env(cache_dir=Path(tempfile.gettempdir()))
    params = resolve_params(DigitScenes.params, {**SCENES, "n_scenes": n_images + 300, "n_test": n_images}, "bench")
    data = DigitScenes().load(params, env)
    splits = data.splits(0)
    source = registry.get("source", plugin).item
    built = source.build(resolve_params(source.params, source_settings, "bench"), env, pretrained=True)
    task = registry.get("task", "detection").item
    run = supervised_target(splits, data, task, built.encode_whole, "cpu", 0)
    model = TaskModel(built.backbone, run.objective.head(built), task.representation)
    start = time.perf_counter()
    predictions = predict(run, model, "test", engine_defaults())
    return time.perf_counter() - start, predictions, splits.test.labels, data.info()


def scoring_cost(weights: Path, n_images: int, threads: int) -> tuple[float, float]:
    """(seconds of the test pass, seconds of scoring it) over `n_images` scenes."""
    from tlbench_builtin.detection import Detection

    passed, predictions, labels, info = test_pass("timm", {"model": "test_resnet", "file": str(weights),
                                                           "input_size": INPUT_SIZE}, n_images, threads)
    start = time.perf_counter()
    Detection().score(predictions, labels, info)
    return passed, time.perf_counter() - start


def resnet50_pass_per_image(n_images: int, threads: int) -> float:
    """Seconds per image of a test pass of torchvision's FCOS ResNet-50 at 512 pixels (the
    `torchvision` source, random weights), over `n_images` digit scenes: what a real
    detector's test pass costs next to the tiny CNN's."""
    settings = {"model": "fcos_resnet50_fpn", "pretrained": False, "input_size": 512}
    return test_pass("torchvision", settings, n_images, threads)[0] / n_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=5000, help="test images scored for the mAP cost")
    parser.add_argument("--only", choices=("scoring",), help="measure the scoring cost only")
    args = parser.parse_args()
    import torch

    from tlbench.plugins import PluginRegistry

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        weights = save_random_weights("test_resnet", folder, seed=1234)
        suite_path = folder / "detection.toml"
        suite_path.write_text(SUITE.format(seed=args.seed, epochs=args.epochs, weights=weights))
        registry = PluginRegistry.load()
        if args.only == "scoring":
            report_scoring(weights, args, load)
            return
        tlbench_run(suite_path, folder, registry, 0, args.threads)  # warm-up
        plain_run(weights, args.seed, args.epochs)
        ours, theirs = [], []
        for i in range(args.repeats):
            order = ("tlbench", "plain") if i % 2 == 0 else ("plain", "tlbench")
            for side in order:
                if side == "tlbench":
                    ours.append(tlbench_run(suite_path, folder, registry, i + 1, args.threads))
                else:
                    theirs.append(plain_run(weights, args.seed, args.epochs))
        ratio = statistics.median(a[0] / b[0] for a, b in zip(ours, theirs))
        print(f"{ratio:.3f}x  (target <= 1.05x)  in-process: tlbench runner (inline executor) / plain torchvision "
              f"FCOS loop (median of {len(ours)} interleaved pairs: {statistics.median(a[0] for a in ours):.2f} s "
              f"vs {statistics.median(b[0] for b in theirs):.2f} s)", flush=True)
        print(f"test mAP: tlbench {ours[0][1]:.4f}, plain {theirs[0][1]:.4f} ({args.epochs} epochs, seed "
              f"{args.seed}; different random heads, the same within noise expected)", flush=True)
        report_scoring(weights, args, load)


def report_scoring(weights: Path, args, load: float) -> None:
    passed, scored = scoring_cost(weights, args.images, args.threads)
    print(f"{scored / passed:.3f}x  (target < 0.10x)  scoring {args.images} test images (COCO mAP, 100 boxes "
          f"each) / the test pass that predicted them ({scored:.2f} s vs {passed:.2f} s; {args.threads} "
          f"thread(s); load average {load:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    per_image = resnet50_pass_per_image(16, args.threads)
    print(f"{scored / (per_image * args.images):.4f}x  (target < 0.10x)  the same scoring / a test pass of "
          f"torchvision's FCOS ResNet-50 at 512 pixels over as many images ({per_image:.3f} s an image, "
          f"timed on 16 and extrapolated)", flush=True)


if __name__ == "__main__":
    main()
