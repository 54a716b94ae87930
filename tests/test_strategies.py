"""The built-in strategies do exactly what their names and papers say.

Image strategies run on timm's tiny `test_resnet` (random weights saved to a local
file, loaded by the `timm` source) and `test_vit`; text strategies on a tiny BERT
saved to a local folder and loaded by the `hf` source. Targets are few-shot digits
and a few short sentences. Every check compares weights before and after `fit`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tlbench.api import Env, Split, Splits, TargetData
from tlbench.run.context import RunContext
from tlbench.testing import run_context
from tlbench.errors import ParamError
from tlbench.params import resolve_params

ENGINE = {"epochs": 2, "batch_size": 4}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "great", "awful", "movie", "film",
         "plot", "the", "a", "was", "very", "fine", "poor"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------- sources and targets


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=48, max_position_embeddings=32)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")  # transformers 4 and 5 alike
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def digits():
    from tlbench_builtin.digits import DigitsData

    return DigitsData(classes=[0, 1, 2], shots=4, val_shots=3)


class Sentences(TargetData):
    """Positive vs negative sentences from a small vocabulary."""

    num_classes, modality, class_names = 2, "text", ["negative", "positive"]

    def splits(self, seed: int) -> Splits:
        rng = np.random.default_rng(seed)
        words = (["good", "great", "fine"], ["bad", "awful", "poor"])

        def make(n: int) -> Split:
            labels = np.arange(n) % 2
            texts = [f"the {rng.choice(['movie', 'film', 'plot'])} was very {rng.choice(words[1 - y])}"
                     for y in labels]
            return Split(examples=texts, labels=labels.astype(np.int64))

        return Splits(train=make(8), val=make(4), test=make(6))


def build(registry, name: str, params: dict, cache_dir: Path):
    item = registry.get("source", name).item
    torch.manual_seed(0)
    return item.build(resolve_params(item.params, params, name), Env(cache_dir=cache_dir, registry=registry))


def resnet(registry, resnet_file, cache_dir):
    return build(registry, "timm", {"model": "test_resnet", "file": resnet_file, "input_size": 32}, cache_dir)


def vit():
    from tlbench_builtin.timm_models import create, data_config, source_model

    torch.manual_seed(0)
    model = create("test_vit", pretrained=False, img_size=32)
    return source_model(model, pretrained=True, data_config=data_config(model), meta={})


def bert(registry, bert_folder, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return build(registry, "hf", {"model": str(bert_folder), "max_length": 12}, cache_dir)


def make_run(source, target, seed: int = 0) -> RunContext:
    """A run on `target`'s splits for `seed`, the test split cut to 40 examples."""
    splits = target.splits(seed)
    splits.test = Split(examples=list(splits.test.examples)[:40], labels=splits.test.labels[:40])
    return run_context(source, target, seed, splits=splits)


def fit(registry, name: str, run: RunContext, **given):
    item = registry.get("strategy", name).item
    torch.manual_seed(run.seed)
    return item.fit(resolve_params(item.params, given, name), run)


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, copied."""
    return {name: value.detach().clone() for name, value in
            [*module.named_parameters(), *module.named_buffers()]}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    after = dict([*module.named_parameters(), *module.named_buffers()])
    return {name for name, value in before.items() if not torch.equal(value, after[name].detach())}


@pytest.fixture
def image_run(registry, resnet_file, cache_dir, digits):
    return make_run(resnet(registry, resnet_file, cache_dir), digits)


@pytest.fixture
def text_run(registry, bert_folder, cache_dir, monkeypatch):
    return make_run(bert(registry, bert_folder, cache_dir, monkeypatch), Sentences())


# ---------------------------------------------------------------------- every strategy


FINETUNING = ["full-finetune", "scratch", "partial-finetune", "lp-ft", "l2-sp", "llrd", "bitfit"]


@pytest.mark.parametrize("name", FINETUNING)
def test_what_is_not_counted_trainable_stays_bitwise_unchanged(registry, image_run, name):
    before = state(image_run.source.backbone)
    result = fit(registry, name, image_run, **ENGINE)
    model = result.model
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    moved = changed(before, model.backbone)
    buffers = {n for n, _ in model.backbone.named_buffers()}
    assert moved - buffers <= trainable
    assert result.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert result.info["trainable"]["head"] == sum(p.numel() for p in model.head.parameters())
    assert "resolved" in result.info and result.info["training"]["epochs_run"] == ENGINE["epochs"]
    for split in ("train", "val", "test"):
        assert result.logits[split].shape == (len(image_run.split(split)), image_run.num_classes)


def test_scratch_is_the_full_finetune_recipe_from_random_weights(registry):
    full, scratch = (registry.get("strategy", n).item for n in ("full-finetune", "scratch"))
    assert scratch.init == "random" and full.init == "pretrained"
    assert scratch.params == full.params and full.baseline_recipe


# ---------------------------------------------------------------------- linear probe


def test_linear_probe_leaves_the_backbone_bitwise_unchanged(registry, image_run):
    before = state(image_run.source.backbone)
    result = fit(registry, "linear-probe", image_run)
    assert changed(before, image_run.source.backbone) == set()
    head = result.model.head
    assert result.trainable_params == head.weight.numel() + head.bias.numel()
    features = image_run.features("test")
    expected = features @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    np.testing.assert_allclose(result.logits["test"], expected, rtol=1e-5, atol=1e-5)
    probe = result.info["probe"]
    scores = probe["val_score_by_l2"]
    best = max(scores.values())
    strongest_best = max(float(k) for k, v in scores.items() if v == best)
    assert probe["l2"] == strongest_best and result.info["resolved"]["l2"] == strongest_best


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_logistic_solver_reaches_scikit_learn_optimum(digits, backend):
    """One strength, tight tolerance: the same minimiser as LogisticRegression(C = 1 / (l2 n)),
    on the CPU path (numpy) and on the GPU path's code (torch, here on the CPU)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tlbench_builtin.linear_solvers import fit_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 12)) * rng.uniform(0.5, 3, size=12) + rng.normal(size=12)
    y = (x[:, :3] @ rng.normal(size=(3, 3))).argmax(1)
    l2 = 0.01
    ours = fit_probe(x, y, x[:0], None, loss="softmax", num_classes=3, l2_grid=[l2], max_iter=1000, tol=1e-7,
                     backend_name=backend)
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-12, max_iter=10000).fit(scaler.transform(x), y)
    weight = reference.coef_ / scaler.scale_
    bias = reference.intercept_ - weight @ scaler.mean_
    np.testing.assert_allclose(ours.weight, weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.bias, bias, rtol=1e-4, atol=1e-5)
    assert ours.converged[l2]


# ---------------------------------------------------------------------- partial fine-tuning


def frozen_module_names(run: RunContext, groups: int) -> set[str]:
    return {name.rpartition(".")[0] for group in run.source.layer_groups[:groups] for name in group}


@pytest.mark.parametrize("freeze_bn_stats", [True, False])
def test_partial_finetune_freezes_the_first_groups(registry, image_run, freeze_bn_stats):
    groups = image_run.source.layer_groups
    frozen_params = {n for g in groups[:2] for n in g}
    modules = frozen_module_names(image_run, 2)
    frozen_buffers = {n for n, _ in image_run.source.backbone.named_buffers() if n.rpartition(".")[0] in modules}
    assert frozen_buffers  # test_resnet's stem and first stage hold BatchNorm layers
    before = state(image_run.source.backbone)
    result = fit(registry, "partial-finetune", image_run, freeze_first=2, freeze_bn_stats=freeze_bn_stats,
                 **ENGINE)
    moved = changed(before, result.model.backbone)
    assert not moved & frozen_params
    assert moved & {n for g in groups[2:] for n in g}
    if freeze_bn_stats:
        assert not moved & frozen_buffers
    else:
        assert moved & frozen_buffers  # batch statistics flowed into the frozen layers' buffers
    assert result.info["resolved"]["frozen_groups"] == 2
    assert result.info["trainable"]["backbone"] == sum(
        p.numel() for n, p in image_run.source.backbone.named_parameters() if n not in frozen_params)


def test_partial_finetune_train_last_and_its_errors(registry, image_run):
    n_groups = len(image_run.source.layer_groups)
    result = fit(registry, "partial-finetune", image_run, train_last=2, **{**ENGINE, "epochs": 1})
    assert result.info["resolved"] == {**result.info["resolved"], "frozen_groups": n_groups - 2,
                                       "trained_groups": 2}
    with pytest.raises(ParamError, match="not both"):
        fit(registry, "partial-finetune", image_run, train_last=1, freeze_first=1)
    with pytest.raises(ParamError, match=f"only {n_groups} layer groups"):
        fit(registry, "partial-finetune", image_run, freeze_first=n_groups + 1)


def test_partial_finetune_on_a_text_encoder(registry, text_run):
    groups = text_run.source.layer_groups
    frozen = {n for g in groups[:-1] for n in g}
    before = state(text_run.source.backbone)
    result = fit(registry, "partial-finetune", text_run, train_last=1, **ENGINE)
    moved = changed(before, result.model.backbone)
    assert moved and not moved & frozen


# ---------------------------------------------------------------------- bitfit


def test_bitfit_changes_only_biases_and_the_head(registry, image_run):
    from tlbench_builtin.bitfit import is_bias

    backbone = image_run.source.backbone
    biases = {n for n, _ in backbone.named_parameters() if is_bias(n)}
    assert biases and all(n.endswith(".bias") for n in biases)
    before = state(backbone)
    result = fit(registry, "bitfit", image_run, **ENGINE)
    moved = changed(before, backbone)
    assert moved and moved <= biases  # no weight, no BatchNorm statistic
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable == biases
    head = result.model.head
    assert result.trainable_params == sum(p.numel() for n, p in backbone.named_parameters() if n in biases) \
        + head.weight.numel() + head.bias.numel()
    assert head.weight.requires_grad and head.bias.requires_grad


def test_bitfit_bias_names():
    from tlbench_builtin.bitfit import is_bias

    assert is_bias("blocks.0.attn.qkv.bias") and is_bias("blocks.0.attn.q_bias") and is_bias("norm.bias")
    assert not is_bias("norm.weight") and not is_bias("attn.relative_position_bias_table")


# ---------------------------------------------------------------------- lora


def lora_expectations(backbone, targets) -> int:
    """Parameters LoRA of rank 1 adds: in + out per adapted linear layer."""
    return sum(m.in_features + m.out_features for n, m in backbone.named_modules()
               if isinstance(m, torch.nn.Linear) and n.rpartition(".")[2] in targets)


@pytest.mark.parametrize("kind", ["timm-vit", "bert"])
def test_lora_trains_only_adapters_and_the_head(registry, kind, request, digits):
    if kind == "timm-vit":
        run, targets = make_run(vit(), digits), ["qkv"]
    else:
        run, targets = request.getfixturevalue("text_run"), ["query", "value"]
    rank = 3
    per_rank = lora_expectations(run.source.backbone, targets)
    before = state(run.source.backbone)
    result = fit(registry, "lora", run, rank=rank, alpha=6.0, **ENGINE)
    model = result.model
    assert result.info["resolved"]["target_modules"] == targets
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") or ".lora_A." in n or ".lora_B." in n for n in trainable)
    head = model.head.weight.numel() + model.head.bias.numel()
    assert result.trainable_params == rank * per_rank + head
    # the pretrained weights, now the adapted layers' base weights, are bitwise unchanged
    after = {n.replace(".base_layer.", "."): p for n, p in
             [*model.backbone.named_parameters(), *model.backbone.named_buffers()] if "lora_" not in n}
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if ".lora_B." in n)  # B left zero


def test_lora_needs_attention_projections(registry, image_run):
    with pytest.raises(ParamError, match="found no attention projections"):
        fit(registry, "lora", image_run, **ENGINE)
    with pytest.raises(ParamError, match="no linear layer named 'qkv'"):
        fit(registry, "lora", image_run, target_modules=["qkv"], **ENGINE)


# ---------------------------------------------------------------------- l2-sp


def test_l2sp_penalty_is_zero_at_the_start_and_exactly_quadratic():
    from tlbench_builtin.l2_sp import L2SPPenalty

    torch.manual_seed(0)
    body, head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    penalty = L2SPPenalty(body.parameters(), head.parameters(), alpha=0.3, beta=0.05)
    head_norm = sum(float((p.detach() ** 2).sum()) for p in head.parameters())
    assert penalty.terms() == {"sp_penalty": 0.0, "head_penalty": pytest.approx(0.5 * 0.05 * head_norm)}
    delta = torch.randn_like(body.weight)
    with torch.no_grad():
        body.weight += delta
    assert penalty.terms()["sp_penalty"] == pytest.approx(0.5 * 0.3 * float((delta ** 2).sum()), rel=1e-5)
    penalty().backward()
    torch.testing.assert_close(body.weight.grad, 0.3 * delta)
    torch.testing.assert_close(body.bias.grad, torch.zeros(3))
    torch.testing.assert_close(head.weight.grad, 0.05 * head.weight.detach())


def test_l2sp_penalty_grows_as_weights_move_from_the_pretrained_ones(registry, image_run):
    pretrained = state(image_run.source.backbone)
    result = fit(registry, "l2-sp", image_run, alpha=0.5, beta=0.02, **{**ENGINE, "epochs": 3, "select": "last"})
    penalty = result.info["penalty"]
    assert penalty["start"]["sp_penalty"] == 0.0
    history = [entry["sp_penalty"] for entry in result.info["training"]["history"]]
    assert 0 < history[0] and history[-1] == penalty["end"]["sp_penalty"]
    params = dict(result.model.backbone.named_parameters())
    distance = sum(float(((params[n].detach() - pretrained[n]) ** 2).sum()) for n in params)
    assert penalty["end"]["sp_penalty"] == pytest.approx(0.5 * 0.5 * distance, rel=1e-5)
    head = sum(float((p.detach() ** 2).sum()) for p in result.model.head.parameters())
    assert penalty["end"]["head_penalty"] == pytest.approx(0.5 * 0.02 * head, rel=1e-5)
    assert registry.get("strategy", "l2-sp").item.params["weight_decay"].default == 0.0


# ---------------------------------------------------------------------- llrd


def test_llrd_group_learning_rates_follow_the_decay(registry, image_run):
    decay, lr = 0.5, 0.01
    result = fit(registry, "llrd", image_run, decay=decay, lr=lr, **ENGINE)
    n_groups = len(image_run.source.layer_groups)
    observed: dict[str, float] = {}
    for group in result.info["training"]["groups"]:  # peak rates as the optimiser saw them
        observed[group["label"].removesuffix("/no_decay")] = group["peak_lr"]
    assert observed["head"] == pytest.approx(lr)
    for i in range(n_groups):
        assert observed[f"layer{i}"] == pytest.approx(lr * decay ** (n_groups - i))
    for i in range(n_groups - 1):
        assert observed[f"layer{i}"] / observed[f"layer{i + 1}"] == pytest.approx(decay)


def test_llrd_puts_every_parameter_in_its_layer_group(registry, image_run):
    from tlbench_builtin.finetuning import layer_index, new_model
    from tlbench_builtin.llrd import llrd_groups

    index = layer_index(image_run)
    model = new_model(image_run)
    groups = llrd_groups(model, index, len(image_run.source.layer_groups), 1.0, 0.8, 0.05)
    n_groups = len(image_run.source.layer_groups)
    rate = {name: g["lr"] for g in groups for name in g["names"]}
    assert set(rate) == {n for n, _ in model.backbone.named_parameters()} | {"weight", "bias"}
    for name, group in index.items():
        assert rate[name] == pytest.approx(0.8 ** (n_groups - group))


def test_llrd_on_a_text_encoder(registry, text_run):
    result = fit(registry, "llrd", text_run, decay=0.5, **ENGINE)
    lrs = result.info["resolved"]["layer_lrs"]
    assert len(lrs) == len(text_run.source.layer_groups) >= 3
    assert all(a / b == pytest.approx(0.5) for a, b in zip(lrs, lrs[1:]))


# ---------------------------------------------------------------------- lp-ft


def test_lp_ft_starts_fine_tuning_from_the_probed_head(registry, resnet_file, cache_dir, digits):
    """With a zero learning rate the fine-tuning phase keeps its initial head: the probe's."""
    probe = fit(registry, "linear-probe", make_run(resnet(registry, resnet_file, cache_dir), digits))
    frozen_lr = {**ENGINE, "epochs": 1, "lr": 0.0}
    lpft = fit(registry, "lp-ft", make_run(resnet(registry, resnet_file, cache_dir), digits), **frozen_lr)
    assert torch.equal(lpft.model.head.weight, probe.model.head.weight)
    assert torch.equal(lpft.model.head.bias, probe.model.head.bias)
    assert lpft.info["probe"]["l2"] == probe.info["probe"]["l2"]
    control = fit(registry, "full-finetune", make_run(resnet(registry, resnet_file, cache_dir), digits),
                  **frozen_lr)
    assert not torch.equal(control.model.head.weight, probe.model.head.weight)
    assert lpft.trainable_params == lpft.total_params  # then everything trains


# ---------------------------------------------------------------------- backbone and head rates


def test_backbone_lr_scale_is_one_parameter_of_full_finetune_and_lp_ft(registry):
    from tlbench_builtin.finetuning import BACKBONE_LR_SCALE

    shared = BACKBONE_LR_SCALE["backbone_lr_scale"]
    users = {reg.name for reg in registry.items("strategy") if "backbone_lr_scale" in reg.item.params}
    assert users == {"full-finetune", "scratch", "lp-ft", "erm", "dann", "cdan", "mcc", "coral", "stl", "mtl-equal",
                     "mtl-uncertainty", "mtl-random", "mtl-pcgrad", "mtl-upgrad"}
    assert all(registry.get("strategy", name).item.params["backbone_lr_scale"] is shared for name in users)


@pytest.mark.parametrize("name, given, backbone_label, backbone_scale", [
    ("full-finetune", {"backbone_lr_scale": 0.25}, "backbone", 0.25),
    ("lp-ft", {"backbone_lr_scale": 0.1}, "backbone", 0.1),
    ("l2-sp", {}, "backbone", 1.0),
    ("bitfit", {}, "biases", 1.0),
])
def test_backbone_and_head_train_at_their_own_rates(registry, image_run, name, given, backbone_label,
                                                    backbone_scale):
    lr = 0.02
    result = fit(registry, name, image_run, lr=lr, **given, **{**ENGINE, "epochs": 1})
    peaks: dict[str, list[float]] = {}
    for group in result.info["training"]["groups"]:  # as the optimiser saw them
        peaks.setdefault(group["label"].removesuffix("/no_decay"), []).append(group["peak_lr"])
    assert set(peaks) == {backbone_label, "head"}
    assert peaks[backbone_label] == [pytest.approx(lr * backbone_scale)] * len(peaks[backbone_label])
    assert peaks["head"] == [pytest.approx(lr)] * len(peaks["head"])
    if "backbone_lr_scale" in given:
        assert {k: result.info["resolved"][k] for k in ("backbone_lr", "head_lr")} == {
            "backbone_lr": pytest.approx(lr * backbone_scale), "head_lr": lr}
