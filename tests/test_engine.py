"""The training engine: its schedule, weight decay, freezing, checkpoint selection,
early stopping, clipping and budget checks, on a small real model and real digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tlbench.api import SourceModel
from tlbench.run.budget import Budget, TimeBudgetExceeded
from tlbench.run.context import RunContext
from tlbench.run.engine import cosine_factor
from tlbench.testing import run_context
from tlbench.training import (ENGINE_PARAMS, TaskModel, count_params, engine_defaults, engine_params, evaluate,
                              param_groups, predict, stat_layers, train, train_mode_keeping_stats)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def encode(examples) -> torch.Tensor:
    return torch.as_tensor(np.stack([np.asarray(e) for e in examples]), dtype=torch.float32).flatten(1) / 255.0


def mlp_source(seed: int = 0) -> SourceModel:
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
    groups = [["0.weight", "0.bias", "1.weight", "1.bias"], ["3.weight", "3.bias"]]
    return SourceModel(backbone=backbone, feature_dim=16, modality="image", encode=encode, layer_groups=groups,
                       weights_id=f"mlp:{seed}", preprocessing_id="flatten/255")


@pytest.fixture(scope="module")
def digits():
    from tlbench_builtin.digits import DigitsData

    return DigitsData(classes=[0, 1, 2, 3], shots=12, val_shots=8)


def make_run(digits, source=None, budget=None, seed: int = 0) -> RunContext:
    source = source or mlp_source()
    return run_context(source, digits, seed, budget=budget)


def model_and_groups(run: RunContext, params: dict):
    torch.manual_seed(1)
    model = TaskModel(run.source.backbone, run.new_head())
    groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])
    return model, groups


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    total, warmup = 100, 10
    assert [cosine_factor(s, total, warmup) for s in range(3)] == [0.1, 0.2, 0.3]
    assert cosine_factor(9, total, warmup) == 1.0
    assert cosine_factor(10, total, warmup) == 1.0
    assert cosine_factor(55, total, warmup) == pytest.approx(0.5)
    assert cosine_factor(100, total, warmup) == pytest.approx(0.0)
    assert cosine_factor(30, total, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))


def test_param_groups_exempt_norms_and_biases_from_weight_decay():
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model[3].weight.requires_grad_(False)
    groups = {g["label"]: g for g in param_groups(model.named_parameters(), 0.1, 0.05, "m")}
    assert groups["m"]["names"] == ["0.weight"] and groups["m"]["weight_decay"] == 0.05
    assert groups["m/no_decay"]["names"] == ["0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.bias"]
    assert groups["m/no_decay"]["weight_decay"] == 0.0


def test_engine_params_change_defaults_only_where_asked():
    changed = engine_params(weight_decay=0.0)
    assert changed["weight_decay"].default == 0.0 and ENGINE_PARAMS["weight_decay"].default == 0.05
    assert {k: v for k, v in changed.items() if k != "weight_decay"} == \
        {k: v for k, v in ENGINE_PARAMS.items() if k != "weight_decay"}
    with pytest.raises(KeyError, match="not engine parameters: rank"):
        engine_params(rank=4)


def test_weight_decay_shrinks_weights_by_the_schedule_and_spares_biases(digits):
    """A parameter with zero gradient moves only by AdamW's decoupled decay: w ← w·(1 − lr_t·wd)."""
    run = make_run(digits)
    params = engine_defaults(epochs=2, batch_size=16, lr=0.1, weight_decay=0.5, warmup_epochs=0.5)

    class WithIdle(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.idle = nn.Linear(3, 3)  # used with a zero coefficient: zero gradient

        def forward(self, inputs):
            return self.inner(inputs) + 0.0 * self.idle.weight.sum() + 0.0 * self.idle.bias.sum()

    model, _ = model_and_groups(run, params)
    model = WithIdle(model)
    groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])
    weight, bias = model.idle.weight.detach().clone(), model.idle.bias.detach().clone()
    outcome = train(run, model, groups, {**params, "select": "last"})
    steps_per_epoch = outcome.steps // 2
    warmup = round(0.5 * steps_per_epoch)
    shrink = math.prod(1 - params["lr"] * cosine_factor(s, outcome.steps, warmup) * params["weight_decay"]
                       for s in range(outcome.steps))
    torch.testing.assert_close(model.idle.weight.detach(), weight * shrink, rtol=1e-5, atol=1e-7)
    assert torch.equal(model.idle.bias.detach(), bias)


def test_parameters_outside_the_groups_are_frozen_and_unchanged(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=2, batch_size=16)
    model, _ = model_and_groups(run, params)
    first = model.backbone[0]
    before = {name: p.detach().clone() for name, p in first.named_parameters()}
    groups = param_groups([(n, p) for n, p in model.named_parameters() if not n.startswith("backbone.0.")],
                          params["lr"], params["weight_decay"])
    train(run, model, groups, params)
    assert all(torch.equal(p, before[n]) for n, p in first.named_parameters())
    assert not any(p.requires_grad for p in first.parameters())
    trainable, total = count_params(model)
    assert trainable == total - sum(p.numel() for p in before.values())


def test_best_val_selection_restores_the_best_epoch(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=8, batch_size=8, lr=0.05)
    model, groups = model_and_groups(run, params)
    outcome = train(run, model, groups, params)
    accuracies = [entry["val_accuracy"] for entry in outcome.history]
    assert outcome.best_val == max(accuracies)
    assert outcome.best_epoch == accuracies.index(max(accuracies)) + 1 == outcome.selected_epoch
    val = predict(run, model, "val", params)
    assert float((val.argmax(1) == run.split("val").labels).mean()) == outcome.best_val


def test_select_last_keeps_the_final_weights(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=3, batch_size=8, select="last")
    model, groups = model_and_groups(run, params)
    outcome = train(run, model, groups, params)
    assert outcome.selected_epoch == outcome.epochs_run == 3


def test_early_stopping_after_patience_epochs_without_improvement(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=10, batch_size=8, lr=0.0, patience=2)  # nothing can improve
    model, groups = model_and_groups(run, params)
    outcome = train(run, model, groups, params)
    assert outcome.stopped_early and outcome.epochs_run == 3 and outcome.best_epoch == 1


def test_gradient_clipping_bounds_every_step(digits):
    """With plain SGD, a step moves the parameters by lr_t · clipped gradient, at most lr · clip."""
    run = make_run(digits)
    params = engine_defaults(epochs=1, batch_size=8, optimizer="sgd", momentum=0.0, weight_decay=0.0,
                             lr=1.0, warmup_epochs=0.0, clip_grad_norm=1e-3, select="last")
    model, groups = model_and_groups(run, params)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    outcome = train(run, model, groups, params)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    moved = float((after - before).norm())
    assert 0 < moved <= outcome.steps * params["lr"] * params["clip_grad_norm"] * (1 + 1e-4)


def test_groups_keep_their_learning_rate_ratio_and_are_recorded(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=2, batch_size=8, lr=0.01)
    model, _ = model_and_groups(run, params)
    groups = param_groups(model.backbone.named_parameters(), 0.001, 0.05, "backbone")
    groups += param_groups(model.head.named_parameters(), 0.01, 0.05, "head")
    outcome = train(run, model, groups, params)
    by_label = {g["label"]: g for g in outcome.groups}
    assert by_label["backbone"]["peak_lr"] == pytest.approx(0.001)
    assert by_label["head"]["peak_lr"] == pytest.approx(0.01)
    assert by_label["head"]["params"] == run.source.feature_dim * run.num_classes


def test_frozen_batchnorm_statistics_stay_fixed(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=2, batch_size=8)
    model, groups = model_and_groups(run, params)
    norm = model.backbone[1]
    stats = {name: b.clone() for name, b in norm.named_buffers()}
    train(run, model, groups, params, set_train_mode=train_mode_keeping_stats(stat_layers(model)))
    assert all(torch.equal(b, stats[name]) for name, b in norm.named_buffers())
    train(run, model, groups, params)  # and without: they move
    assert not torch.equal(norm.running_mean, stats["running_mean"])


def test_training_stops_at_the_time_budget_with_the_last_evaluation(digits):
    run = make_run(digits, budget=Budget(0.0))
    params = engine_defaults(epochs=2, batch_size=8)
    model, groups = model_and_groups(run, params)
    with pytest.raises(TimeBudgetExceeded):
        train(run, model, groups, params)


def test_evaluate_gives_logits_for_every_split_and_counts(digits):
    run = make_run(digits)
    params = engine_defaults(epochs=1, batch_size=8)
    model, groups = model_and_groups(run, params)
    train(run, model, groups, params)
    fit = evaluate(run, model, params, {"note": 1})
    for name in ("train", "val", "test"):
        assert fit.logits[name].shape == (len(run.split(name)), run.num_classes)
    assert fit.trainable_params == fit.total_params == sum(p.numel() for p in model.parameters())
    assert fit.info == {"note": 1}


def test_the_loss_hook_sees_each_step_and_one_batch_of_every_extra_source(digits):
    """A strategy's extra loss (a regulariser, an adaptation or a multi-task loss) gets the
    step's batch, the model's outputs on it, a batch of each extra source (cycled,
    reshuffled) and the training progress; a zero term changes nothing."""
    params = engine_defaults(epochs=3, batch_size=8, select="last")
    plain_run = make_run(digits)
    plain, groups = model_and_groups(plain_run, params)
    train(plain_run, plain, groups, params)

    run = make_run(digits)
    model, groups = model_and_groups(run, params)
    steps = []

    def hook(step):
        assert step.outputs.shape == (len(step.targets), run.num_classes)
        assert step.model is model and step.epoch >= 1
        other_inputs, other_targets = step.extra["val"]
        assert other_inputs.shape[0] == len(other_targets) <= 5
        steps.append((step.step, step.progress, other_targets.tolist()))
        return 0.0 * step.outputs.sum()

    outcome = train(run, model, groups, params, loss_hook=hook, extra={"val": run.batches("val", 5)})
    assert [s for s, _, _ in steps] == list(range(outcome.steps))
    progress = [p for _, p, _ in steps]
    assert progress[0] == 0.0 and progress == sorted(progress) and progress[-1] < 1.0
    seen = [label for _, _, labels in steps for label in labels]
    assert len(seen) > len(run.split("val")) and sorted(seen[:len(run.split("val"))]) == sorted(
        run.split("val").labels.tolist())  # a whole pass over the extra source, then it cycles
    for name in ("train", "val", "test"):  # the zero term: bitwise the plain training
        np.testing.assert_array_equal(predict(run, model, name, params), predict(plain_run, plain, name, params))


def test_selection_follows_the_headline_direction(digits):
    """A task whose headline is lower-is-better keeps the epoch with the lowest value."""
    from tlbench.api import MetricSpec

    run = make_run(digits)
    task = run.task

    class ErrorRate(type(task)):
        name = "error-rate"
        metrics = (MetricSpec("error", higher_is_better=False, low=0.0, high=1.0),)
        headline = "error"

        def score(self, predictions, labels, target):
            return {"error": 1.0 - super().score(predictions, labels, target)["accuracy"]}

    run.scored.task = ErrorRate()
    params = engine_defaults(epochs=8, batch_size=8, lr=0.05)
    model, groups = model_and_groups(run, params)
    outcome = train(run, model, groups, params)
    errors = [entry["val_error"] for entry in outcome.history]
    assert outcome.selection == {"rule": "val", "metric": "val_error", "higher_is_better": False,
                                 "reads": ["target:val:labels"]}
    assert outcome.best_val == min(errors) and outcome.selected_epoch == errors.index(min(errors)) + 1
