"""Conformance of sources: features of the declared size that do not depend on the
rest of their batch, layer groups that hold every trainable parameter once, the
representations a source declares, and a from-scratch twin of the same architecture.

An audio source must declare what it takes (`SourceModel.audio`); its examples are
conditioned to it as a run conditions a target's (`tlbench.audio`) before `encode` sees
them, and different clips must give different features."""

from __future__ import annotations

import dataclasses

from pathlib import Path

from ..api import MODALITIES, SourceModel
from ..plugins import PluginRegistry, Registered
from .items import ItemRef, fail, kit_env, module_state, resolve, state_differences


def sample_examples(modality: str) -> list:
    """Raw examples of every form a source of `modality` must accept."""
    import numpy as np

    if modality == "text":
        return ["a short sentence", "another, somewhat longer example sentence.", "ünïcödé text"]
    if modality == "audio":
        from ..api import Waveform

        rng = np.random.default_rng(0)
        t = np.arange(4000) / 8000
        return [Waveform((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000),  # a tone at 8 kHz
                Waveform((0.1 * rng.standard_normal((2, 22050))).astype(np.float32), 44100),  # stereo noise
                Waveform((0.3 * np.sin(2 * np.pi * 1500 * np.arange(12000) / 16000)).astype(np.float32), 16000),
                Waveform(np.zeros(16000, np.float32), 16000)]  # silence
    from PIL import Image

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # RGB array
            rng.integers(0, 256, (8, 8), dtype=np.uint8),  # greyscale array, like digits
            rng.integers(0, 256, (20, 28, 3), dtype=np.uint8),  # not square
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))]  # PIL image


def check_source(source: ItemRef, params: dict | None = None, *, examples: list | None = None,
                 registry: PluginRegistry | None = None, cache_dir: str | Path | None = None,
                 atol: float = 1e-4) -> SourceModel:
    """Build the source and check its features, layer groups and from-scratch twin.

    Returns the pretrained build. `examples` default to `sample_examples(modality)`.
    """
    from ..hashing import canonical_json
    from ..run.seeding import seed_everything

    reg, params = resolve("source", source, params, registry)
    item, env = reg.item, kit_env(registry, cache_dir)
    item.check(params, env)
    fingerprint = item.fingerprint(params, env)
    if fingerprint is not None and not isinstance(fingerprint, str):
        fail(reg, f"fingerprint() must return a string or None, got {type(fingerprint).__name__}")
    if item.fingerprint(params, env) != fingerprint:
        fail(reg, "fingerprint() differs between two calls with the same params")
    architecture = item.architecture(params)
    if not isinstance(architecture, dict) or canonical_json(architecture) != canonical_json(
            item.architecture(params)):
        fail(reg, "architecture() must return the same JSON-able dict every time")
    if item.seeded(params):
        _check_seeded(reg, item, params, env, fingerprint)
    env = dataclasses.replace(env, seed=0)  # the run's seed, as a worker gives it
    item.prepare(params, env)
    seed_everything(0)
    model = item.build(params, env, pretrained=True)
    check_source_model(reg, model, examples, atol=atol)
    twins = []
    for _ in range(2):
        seed_everything(0)
        twins.append(item.build(params, env, pretrained=False))
    check_source_model(reg, twins[0], examples, atol=atol)
    if twins[0].pretrained:
        fail(reg, "build(pretrained=False) returned a model marked pretrained=True")
    if twins[0].feature_dim != model.feature_dim or twins[0].modality != model.modality:
        fail(reg, "build(pretrained=False) changed feature_dim or modality: it must be the same architecture")
    shapes = {n: tuple(t.shape) for n, t in model.backbone.state_dict().items()}
    if shapes != {n: tuple(t.shape) for n, t in twins[0].backbone.state_dict().items()}:
        fail(reg, "build(pretrained=False) has other parameters than the pretrained build: from-scratch "
                  "baselines must have the same architecture")
    if state_differences(module_state(twins[0].backbone), module_state(twins[1].backbone)):
        fail(reg, "build(pretrained=False) twice under the same torch seed gave different weights: "
                  "random initialisation must come from torch's seeded generator")
    return model


def check_source_model(reg: Registered, model: SourceModel, examples: list | None = None,
                       atol: float = 1e-4) -> None:
    """A built source: feature size, finite features independent of the batch, layer groups."""
    import numpy as np
    import torch

    if not isinstance(model, SourceModel):
        fail(reg, f"build() must return a tlbench.api.SourceModel, got {type(model).__name__}")
    if not isinstance(model.backbone, torch.nn.Module):
        fail(reg, "SourceModel.backbone must be a torch.nn.Module")
    if model.modality not in MODALITIES:
        fail(reg, f"modality must be one of {MODALITIES}, got {model.modality!r}")
    if not isinstance(model.feature_dim, int) or model.feature_dim < 1:
        fail(reg, f"feature_dim must be a positive int, got {model.feature_dim!r}")
    for key in ("weights_id", "preprocessing_id"):
        if not isinstance(getattr(model, key), str) or not getattr(model, key):
            fail(reg, f"{key} must be a non-empty string (it keys the feature cache)")
    check_layer_groups(reg, model)
    _check_task_heads(reg, model)
    examples = examples if examples is not None else sample_examples(model.modality)
    if model.modality == "audio":
        examples = _conditioned(reg, model, examples)
    model.backbone.eval()
    check_representations(reg, model, examples)
    with torch.no_grad():
        batch = _features(model, examples)
        if batch.shape != (len(examples), model.feature_dim):
            fail(reg, f"features of {len(examples)} examples have shape {tuple(batch.shape)}, expected "
                      f"({len(examples)}, {model.feature_dim}) (feature_dim)")
        if not np.isfinite(batch).all():
            fail(reg, "features contain NaN or infinity")
        alone = np.concatenate([_features(model, [example]) for example in examples])
    if not np.allclose(batch, alone, atol=atol, rtol=1e-3):
        worst = float(np.abs(batch - alone).max())
        fail(reg, f"an example's features depend on the other examples in its batch (max difference "
                  f"{worst:.3g}); the feature cache extracts examples in any grouping")
    if model.modality == "audio":
        same = [(i, j) for i in range(len(batch)) for j in range(i + 1, len(batch))
                if np.allclose(batch[i], batch[j], atol=atol, rtol=1e-3)]
        if same:
            fail(reg, f"audio examples {same[0][0]} and {same[0][1]} differ but give the same features: the "
                      f"backbone does not hear its input")


def _check_task_heads(reg: Registered, model: SourceModel) -> None:
    """Each head a source brings is a fresh module per call, sized for the classes asked."""
    import torch

    if not isinstance(model.task_heads, dict):
        fail(reg, f"task_heads must be a dict of task name to head factory, got {type(model.task_heads).__name__}")
    for task, factory in model.task_heads.items():
        first, second = factory(3), factory(3)
        if not isinstance(first, torch.nn.Module):
            fail(reg, f"task_heads[{task!r}](3) must return a torch.nn.Module, got {type(first).__name__}")
        shared = {id(p) for p in first.parameters()} & {id(p) for p in second.parameters()}
        if shared:
            fail(reg, f"task_heads[{task!r}] returns heads that share {len(shared)} parameter tensors: each run "
                      f"needs a fresh one (copy the source's modules)")
        backbone = {id(p) for p in model.backbone.parameters()}
        if backbone & {id(p) for p in first.parameters()}:
            fail(reg, f"task_heads[{task!r}] returns a head holding backbone parameters: strategies freeze and "
                      f"adapt the backbone by its own parameters")


def _conditioned(reg: Registered, model: SourceModel, examples: list) -> list:
    """Audio examples as a run hands them to `encode`: conditioned to `model.audio`."""
    from ..api import AudioInput
    from ..audio import condition

    if not isinstance(model.audio, AudioInput):
        fail(reg, "an audio source must declare SourceModel.audio (tlbench.api.AudioInput: the rate, and the "
                  "length if fixed, it takes)")
    if not isinstance(model.audio.rate, int) or model.audio.rate < 1:
        fail(reg, f"SourceModel.audio.rate must be a positive int, got {model.audio.rate!r}")
    waves = condition(examples, model.audio)
    if any(wave.rate != model.audio.rate or wave.samples.ndim != 1 for wave in waves):
        fail(reg, "conditioned audio is not mono at the declared rate (a bug in tlbench.audio)")
    return waves


def check_representations(reg: Registered, model: SourceModel, examples: list) -> None:
    """Feature maps and token sequences, where the source declares them, have the shapes
    it declares and come from the same parameters as its pooled features."""
    import torch

    if model.feature_levels is not None:
        method = getattr(model.backbone, "forward_feature_maps", None)
        if method is None:
            fail(reg, "declares feature_levels but its backbone has no forward_feature_maps(inputs)")
        with torch.no_grad():
            maps = method(model.encode(list(examples[:2])))
        if not isinstance(maps, (list, tuple)) or len(maps) != len(model.feature_levels):
            fail(reg, f"forward_feature_maps gave {type(maps).__name__} of {len(maps) if hasattr(maps, '__len__') else '?'} "
                      f"maps for {len(model.feature_levels)} declared feature_levels")
        for i, (tensor, level) in enumerate(zip(maps, model.feature_levels)):
            if tensor.dim() != 4 or tensor.shape[0] != min(2, len(examples)) or tensor.shape[1] != level.channels:
                fail(reg, f"feature map {i} has shape {tuple(tensor.shape)}; expected (batch, {level.channels}, h, w)")
        strides = [level.stride for level in model.feature_levels]
        if strides != sorted(strides):
            fail(reg, f"feature_levels must go from fine to coarse (strides {strides})")
    if model.token_dim is not None:
        method = getattr(model.backbone, "forward_tokens", None)
        if method is None:
            fail(reg, "declares token_dim but its backbone has no forward_tokens(inputs)")
        with torch.no_grad():
            hidden, mask = method(model.encode(list(examples[:2])))
        if hidden.dim() != 3 or hidden.shape[-1] != model.token_dim or tuple(mask.shape) != tuple(hidden.shape[:2]):
            fail(reg, f"forward_tokens gave hidden {tuple(hidden.shape)} and mask {tuple(mask.shape)}; expected "
                      f"(batch, tokens, {model.token_dim}) and (batch, tokens)")
    if model.encode_words is not None:
        check_words(reg, model, [str(example).split() or ["a"] for example in examples[:2]])


def check_words(reg: Registered, model: SourceModel, examples: list[list[str]]) -> None:
    """Word lists encoded by `encode_words` give one position per word from
    ``forward_tokens``: (batch, most words, token_dim), a mask that counts each example's
    words (``mask != 0``), and every word of a short example with a vector."""
    import torch

    if model.token_dim is None:
        fail(reg, "gives encode_words but no token_dim: word vectors come from forward_tokens")
    with torch.no_grad():
        hidden, mask = model.backbone.forward_tokens(model.encode_words(examples))
    width = max(map(len, examples))
    if tuple(hidden.shape) != (len(examples), width, model.token_dim) or tuple(mask.shape) != (len(examples), width):
        fail(reg, f"forward_tokens on encode_words of {[len(e) for e in examples]} words gave hidden "
                  f"{tuple(hidden.shape)} and mask {tuple(mask.shape)}; expected ({len(examples)}, {width}, "
                  f"{model.token_dim}) and ({len(examples)}, {width}): one position per word")
    counted = (mask != 0).sum(dim=1).tolist()
    if counted != [len(e) for e in examples] or not bool((mask[mask != 0] == 1).all()):
        fail(reg, f"the word mask of examples of {[len(e) for e in examples]} words is {mask.tolist()}; expected 1 "
                  f"for each word (-1 only for words cut off) and 0 after the last")


def _features(model: SourceModel, examples: list):
    out = model.backbone(model.encode(list(examples)))
    if not hasattr(out, "detach"):
        raise AssertionError(f"backbone returned {type(out).__name__}, expected a (batch, feature_dim) tensor")
    return out.detach().float().cpu().numpy()


def check_layer_groups(reg: Registered, model: SourceModel) -> None:
    """Groups from input to output that hold every trainable backbone parameter once."""
    groups = model.layer_groups
    if not isinstance(groups, list) or not groups or not all(isinstance(g, list) and g for g in groups):
        fail(reg, "layer_groups must be a non-empty list of non-empty lists of parameter names")
    names = dict(model.backbone.named_parameters())
    listed = [name for group in groups for name in group]
    unknown = sorted(set(listed) - set(names))
    if unknown:
        fail(reg, f"layer_groups name parameters the backbone does not have: {unknown[:5]}")
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        fail(reg, f"layer_groups list parameters more than once: {twice[:5]}")
    missing = sorted(n for n, p in names.items() if p.requires_grad and n not in set(listed))
    if missing:
        fail(reg, f"layer_groups leave out {len(missing)} trainable parameters, e.g. {missing[:5]}")


def _check_seeded(reg, item, params: dict, env, fingerprint) -> None:
    """A seeded source: its fingerprint names no seed, and two seeds give two sets of
    weights (else it is not seeded, and its runs' spread over seeds says nothing new)."""
    from ..run.seeding import seed_everything

    states = []
    for seed in (0, 1):
        seeded_env = dataclasses.replace(env, seed=seed)
        if item.fingerprint(params, seeded_env) != fingerprint:
            fail(reg, "fingerprint() changes with env.seed: a seeded source's fingerprint names its recipe; "
                      "the run's seed is in the run's identity already")
        item.prepare(params, seeded_env)
        seed_everything(0)  # the same torch seed: only env.seed differs
        states.append(module_state(item.build(params, seeded_env, pretrained=True).backbone))
    if not state_differences(*states):
        fail(reg, "seeded() is true, but building for seeds 0 and 1 gave the same weights")
