"""The plain baseline of bench/overhead.py: full fine-tuning as a researcher writes it by hand.

    python bench/plain_finetune.py WEIGHTS.safetensors [--seed 0] [--epochs 40] [--threads 1]

No tlbench: scikit-learn's digits 5-9 (10 training and 5 validation images per class,
the rest for testing), timm's `test_resnet` at input 32 with weights from a local file,
a new linear head, AdamW (weight decay 0.05, none on norms and biases), lr 1e-3 with one
epoch of linear warm-up and a per-step cosine decay, batches of 16, the validation
accuracy after every epoch and the best epoch's weights kept, then accuracies on every
split. The same recipe, data and seeds as tlbench's `full-finetune` in
suites/quickstart.toml, so both reach the same accuracy; only the harness differs.

Prints one line of JSON: the accuracies and the wall time of `finetune` (imports and
interpreter start-up not included; time the process for those).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.datasets import load_digits

CLASSES = [5, 6, 7, 8, 9]
SHOTS, VAL_SHOTS = 10, 5
MODEL, INPUT_SIZE = "test_resnet", 32
LR, WEIGHT_DECAY, BATCH_SIZE, WARMUP_EPOCHS = 1e-3, 0.05, 16, 1


def load_splits(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits 5-9 relabelled 0-4; per class, a seeded draw of train / val / test."""
    digits = load_digits()
    keep = np.isin(digits.target, CLASSES)
    images = np.round(digits.images[keep] * (255.0 / 16.0)).astype(np.uint8)
    labels = np.searchsorted(CLASSES, digits.target[keep]).astype(np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == label))
        parts["train"] += members[:SHOTS].tolist()
        parts["val"] += members[SHOTS:SHOTS + VAL_SHOTS].tolist()
        parts["test"] += members[SHOTS + VAL_SHOTS:].tolist()
    return {name: (images[np.sort(index)], labels[np.sort(index)]) for name, index in parts.items()}


def preprocess(images: np.ndarray, config: dict) -> torch.Tensor:
    """8x8 grey images to normalised 3x32x32 tensors (bilinear, antialiased)."""
    x = torch.from_numpy(np.repeat(images[:, None], 3, axis=1)).float()
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


class Net(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


@torch.no_grad()
def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + 128]) for i in range(0, len(x), 128)])


def finetune(weights: str, seed: int = 0, epochs: int = 40) -> dict:
    """Train and evaluate; return accuracies per split and the seconds it took."""
    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    splits = load_splits(seed)
    backbone = timm.create_model(MODEL, pretrained=False, num_classes=0)
    backbone.load_state_dict({k: v for k, v in load_file(weights).items() if not k.startswith("fc.")})
    config = timm.data.resolve_model_data_config(backbone)
    data = {name: (preprocess(images, config), torch.from_numpy(labels))
            for name, (images, labels) in splits.items()}
    torch.manual_seed(seed)
    model = Net(backbone, torch.nn.Linear(backbone.num_features, len(CLASSES)))

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".bias")]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=LR)
    x_train, y_train = data["train"]
    steps_per_epoch = math.ceil(len(y_train) / BATCH_SIZE)
    total, warmup = epochs * steps_per_epoch, WARMUP_EPOCHS * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    best_acc, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for i in range(0, len(y_train), BATCH_SIZE):
            index = order[i:i + BATCH_SIZE]
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        val_acc = (logits_of(model, data["val"][0]).argmax(1) == data["val"][1]).float().mean().item()
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_epoch != epochs:
        model.load_state_dict(best_state)
    accuracies = {f"{name}_accuracy": float((logits_of(model, x).argmax(1) == y).double().mean())
                  for name, (x, y) in data.items()}
    return {**accuracies, "best_epoch": best_epoch, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="test_resnet weights (.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (tlbench's default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(finetune(args.weights, args.seed, args.epochs)))


if __name__ == "__main__":
    main()
