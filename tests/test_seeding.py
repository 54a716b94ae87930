"""Seeding: the same run twice gives identical metrics on CPU; another seed differs."""

from __future__ import annotations

from conftest import RANDOM_RESNET, THREE_DIGITS
from tlbench.run.execute import RunSettings, Worker
from tlbench.plan.planner import plan
from tlbench.plan.suite import load_suite

SUITE = f"""
[suite]
name = "seeding"
seeds = [0, 1]
device = "cpu"

{RANDOM_RESNET}{THREE_DIGITS}
[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 8

[baseline]
enabled = false
"""


def test_same_seed_same_metrics_other_seed_differs(write_suite, registry, cache_dir):
    suite = load_suite(write_suite(SUITE), registry)
    specs = plan(suite, registry, log=lambda m: None).specs
    worker = Worker(RunSettings(device="cpu", cache_dir=str(cache_dir)), registry)
    seed0 = next(s for s in specs if s.seed == 0)
    first, second = worker.run(seed0), worker.run(seed0)
    assert first["status"] == second["status"] == "ok", first["error"]
    keys = ("test_accuracy", "train_accuracy", "val_accuracy")
    assert [first["metrics"][k] for k in keys] == [second["metrics"][k] for k in keys]
    history = first["details"]["strategy"]["training"]["history"]
    assert history == second["details"]["strategy"]["training"]["history"]

    # seed 1 draws other shots (so another content hash) and another initialisation
    seed1 = next(s for s in specs if s.seed == 1)
    assert seed1.content_hash != seed0.content_hash
    other = worker.run(seed1)
    assert other["details"]["strategy"]["training"]["history"] != history
