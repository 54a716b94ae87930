"""transformers speech encoders as tlbench sources: wav2vec 2.0, HuBERT, WavLM, Whisper's encoder.

A model folder whose config is a speech encoder becomes an audio `SourceModel`:

- inputs: tlbench has already turned every example into mono float32 at the feature
  extractor's `sampling_rate` (`SourceModel.audio`); `AudioEncoder` runs the model's own
  feature extractor (`AutoFeatureExtractor` from the same folder) on each example alone,
  so a wav2vec 2.0 normalisation never sees another example's padding. Whisper's
  extractor makes log-mel frames of exactly `chunk_length` seconds (30 s): its encoder
  takes nothing else, so its source takes ``AudioInput(16000, seconds=30)`` and tlbench
  pads every clip to 30 seconds (a 1-second keyword is 97% padding, and the encoder pays
  for all of it: README, "Audio sources").
- pooling: the mean over the frames that hold audio. The frame count comes from the
  model's own ``_get_feat_extract_output_lengths``: of the example's samples
  (wav2vec 2.0 family), or of its mel frames up to the last non-zero sample (Whisper,
  whose input tlbench zero-padded). Models that take no attention mask (the group-norm
  wav2vec 2.0 and HuBERT base models) run each length of a batch on its own, unpadded,
  so an example's features never depend on its batch.
- ``layer_weighting = "weighted"``: SUPERB's learnable softmax-weighted sum of every
  hidden state (the input of the first transformer layer, then each layer's output),
  pooled. The weights are backbone parameters in its last layer group: strategies that
  train the backbone's top train them (full-finetune, scratch, partial-finetune, lp-ft
  after its probe); their softmax is recorded in ``details.source.layer_weights`` each
  time the backbone is put in eval mode, which tlbench's evaluation does after training.
  LoRA and BitFit train them with their adapters or biases and the head (SUPERB trains
  the mix with its downstream model); a strategy that trains the backbone but keeps
  them frozen is refused by its first training step, in one line. The linear probe learns the mix with the backbone
  frozen, as SUPERB does, from every layer's pooled features, which the feature cache
  keeps (`SourceModel.mixed_layers`, ``forward_layers``, ``set_layer_mix``); other
  readers of frozen features (lp-ft's probe, the estimators) read the initial, uniform
  mix (the mean of all layers), the same whether the feature cache serves them or not.
  LayerDrop (which skips whole layers in training, so that they give no hidden state)
  is turned off for a weighted source, and the record says so.
- layer groups: the convolutional feature encoder, then what sits between it and the
  transformer (feature projection, positional convolution or embeddings), then each
  transformer layer, then what follows them (a final layer norm).

WavLM computes attention with ``F.multi_head_attention_forward`` from its projections'
weights, which would bypass adapters placed on them (LoRA); its attention modules are
given the same computation through the projection modules (`_wavlm_attention`).
Imported only when a source is built, never at registration.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from tlbench.api import AudioInput, SourceModel, Waveform
from tlbench.errors import ParamError

LAYER_WEIGHTINGS = ("last", "weighted")
_CONV_PREFIXES = ("feature_extractor.", "conv1.", "conv2.")
"""Where the convolutional feature encoders live: wav2vec 2.0, HuBERT, WavLM; Whisper."""


def is_whisper(config) -> bool:
    return getattr(config, "model_type", None) == "whisper"


# ---------------------------------------------------------------------------- inputs


class AudioEncoder:
    """Mono waveforms at the extractor's rate to the model's inputs (picklable).

    Gives ``input_values`` (batch, samples; wav2vec 2.0 family) or ``input_features``
    (batch, mels, frames; Whisper), ``lengths`` (what the model's
    ``_get_feat_extract_output_lengths`` takes: samples, or mel frames) and, for models
    that take one, ``attention_mask``."""

    def __init__(self, extractor, whisper: bool):
        self.extractor, self.whisper = extractor, whisper
        self.rate = int(extractor.sampling_rate)
        self.with_mask = bool(getattr(extractor, "return_attention_mask", False)) and not whisper

    def identity(self) -> dict:
        config = json.loads(self.extractor.to_json_string())
        return {"feature_extractor": type(self.extractor).__name__,
                "sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()}

    def _samples(self, example: Any) -> np.ndarray:
        if isinstance(example, Waveform):
            if int(example.rate) != self.rate:
                raise ValueError(f"audio at {example.rate} Hz given to a source that takes {self.rate} Hz "
                                 f"(tlbench conditions a target's audio to SourceModel.audio first)")
            example = example.samples
        samples = np.asarray(example, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected mono audio (frames,), got shape {samples.shape}")
        return samples

    def __call__(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        waves = [self._samples(example) for example in examples]
        if self.whisper:
            return self._whisper(waves)
        values = [self.extractor(wave, sampling_rate=self.rate, return_tensors="np")["input_values"][0]
                  for wave in waves]
        lengths = torch.tensor([len(v) for v in values], dtype=torch.long)
        batch = torch.zeros((len(values), int(lengths.max()) if len(values) else 0), dtype=torch.float32)
        for i, v in enumerate(values):
            batch[i, :len(v)] = torch.from_numpy(np.asarray(v, dtype=np.float32))
        out = {"input_values": batch, "lengths": lengths}
        if self.with_mask:
            out["attention_mask"] = (torch.arange(batch.shape[1])[None, :] < lengths[:, None]).long()
        return out

    def _whisper(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        hop, frames = int(self.extractor.hop_length), int(self.extractor.nb_max_frames)
        features = [self.extractor(wave, sampling_rate=self.rate, return_tensors="np")["input_features"][0]
                    for wave in waves]
        heard = []  # mel frames up to the last non-zero sample: tlbench pads with exact zeros
        for wave in waves:
            nonzero = np.flatnonzero(wave[:self.extractor.n_samples])
            samples = int(nonzero[-1]) + 1 if len(nonzero) else len(wave)
            heard.append(min(frames, max(1, math.ceil(samples / hop))))
        return {"input_features": torch.from_numpy(np.stack(features).astype(np.float32)),
                "lengths": torch.tensor(heard, dtype=torch.long)}


# ---------------------------------------------------------------------------- the backbone


class AudioBackbone(nn.Module):
    """A speech encoder pooled to (batch, features): the masked mean over frames of its
    last hidden state, or of the softmax-weighted sum of all its hidden states."""

    def __init__(self, model: nn.Module, input_name: str, takes_mask: bool):
        super().__init__()
        self.model = model
        self.input_name, self.takes_mask = input_name, takes_mask
        self.layer_weights: nn.Parameter | None = None
        self.record: dict = {}
        """Where the layer weights' softmax is written when the backbone goes to eval mode
        (the source's meta, so the run record has it)."""

    def weigh_layers(self, states: int) -> None:
        """Pool a learnable softmax-weighted sum of `states` hidden states (uniform at first)."""
        self.layer_weights = nn.Parameter(torch.zeros(states))

    def mix(self) -> list[float]:
        return [round(float(w), 6) for w in torch.softmax(self.layer_weights.detach().float(), 0)]

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode and self.layer_weights is not None:
            self.record["layer_weights"] = self.mix()
        return self

    def set_layer_mix(self, weights) -> None:
        """Load a mix (one weight per layer, summing to one) as the layer weights' softmax."""
        mix = torch.as_tensor(weights, dtype=torch.float32).clamp_min(1e-12)
        with torch.no_grad():
            self.layer_weights.copy_(torch.log(mix / mix.sum()).to(self.layer_weights))

    def forward(self, inputs: dict) -> torch.Tensor:
        if self.layer_weights is not None and self.training and torch.is_grad_enabled() \
                and not self.layer_weights.requires_grad:
            raise ParamError("layer_weighting = 'weighted': this strategy trains the backbone but keeps the source's "
                             "layer weights frozen; train them with it (the built-in strategies do) or use "
                             "layer_weighting = 'last'")
        if self.layer_weights is None:
            return self._by_length(inputs, self._pooled_last)
        layers = self._by_length(inputs, self._pooled_layers)
        weights = torch.softmax(self.layer_weights, 0).to(layers.dtype)
        return (weights[None, :, None] * layers).sum(dim=1)

    def forward_layers(self, inputs: dict) -> torch.Tensor:
        """Every hidden state, pooled, unmixed: (batch, layers, features)."""
        return self._by_length(inputs, self._pooled_layers)

    def _by_length(self, inputs: dict, pool) -> torch.Tensor:
        """`pool(values, lengths, mask)` over the batch; a model that takes no attention mask
        runs every length unpadded, so padding never changes features."""
        values, lengths = inputs[self.input_name], inputs["lengths"]
        if self.input_name == "input_features":  # Whisper: fixed-size log-mel frames
            return pool(values, lengths, None)
        if self.takes_mask:
            width = int(lengths.max())
            return pool(values[:, :width], lengths, inputs["attention_mask"][:, :width])
        order, parts = [], []
        for length in torch.unique(lengths).tolist():
            rows = torch.nonzero(lengths == length).flatten()
            order.append(rows)
            parts.append(pool(values[rows, :length], lengths[rows], None))
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts)[torch.argsort(torch.cat(order))]

    def _keep(self, lengths: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, frames, 1) mask of the frames that hold audio, and its count per example."""
        frames = self._frames(lengths, hidden.shape[1]).to(hidden.device)
        keep = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frames[:, None]).to(hidden.dtype)
        keep = keep.unsqueeze(-1)
        return keep, keep.sum(dim=1).clamp_min(1.0)

    def _pooled_last(self, values: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        kwargs = {"attention_mask": mask} if mask is not None else {}
        hidden = self.model(**{self.input_name: values}, **kwargs).last_hidden_state
        keep, count = self._keep(lengths, hidden)
        return (hidden * keep).sum(dim=1) / count

    def _pooled_layers(self, values: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        kwargs = {"attention_mask": mask} if mask is not None else {}
        out = self.model(**{self.input_name: values}, output_hidden_states=True, **kwargs)
        if self.layer_weights is not None and len(out.hidden_states) != len(self.layer_weights):
            raise RuntimeError(f"{type(self.model).__name__} gave {len(out.hidden_states)} hidden states for "
                               f"{len(self.layer_weights)} layer weights")
        keep, count = self._keep(lengths, out.last_hidden_state)
        return torch.stack([(state * keep).sum(dim=1) / count for state in out.hidden_states], dim=1)

    def _frames(self, lengths: torch.Tensor, total: int) -> torch.Tensor:
        """Frames of the last hidden state that hold audio, by the model's own arithmetic."""
        output_lengths = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if output_lengths is None:
            return torch.full_like(lengths, total)
        return torch.as_tensor(output_lengths(lengths)).long().clamp(1, total)


def _wavlm_attention(self, hidden_states, attention_mask, gated_position_bias):
    """WavLM's self-attention as ``F.multi_head_attention_forward`` computes it, with the
    projections called as modules, so adapters placed on them take part."""
    bsz, tgt, _ = hidden_states.shape
    heads, dim = self.num_heads, self.head_dim

    def split(x):
        return x.view(bsz, tgt, heads, dim).transpose(1, 2).reshape(bsz * heads, tgt, dim)

    q, k, v = split(self.q_proj(hidden_states)), split(self.k_proj(hidden_states)), split(self.v_proj(hidden_states))
    bias = gated_position_bias
    if attention_mask is not None:
        padded = attention_mask.ne(1).view(bsz, 1, 1, tgt).expand(-1, heads, -1, -1).reshape(bsz * heads, 1, tgt)
        bias = bias.masked_fill(padded, float("-inf"))
    weights = torch.baddbmm(bias, q * math.sqrt(1.0 / dim), k.transpose(1, 2)).softmax(dim=-1)
    weights = nn.functional.dropout(weights, p=self.dropout, training=self.training)
    out = torch.bmm(weights, v).view(bsz, heads, tgt, dim).transpose(1, 2).reshape(bsz, tgt, heads * dim)
    return self.out_proj(out), weights.view(bsz, heads, tgt, tgt)


def route_wavlm_attention(model: nn.Module) -> int:
    """Give WavLM attention modules `_wavlm_attention`; how many were given it."""
    count = 0
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and hasattr(module, "torch_multi_head_self_attention"):
            module.torch_multi_head_self_attention = types.MethodType(_wavlm_attention, module)
            count += 1
    return count


def _no_layerdrop(model: nn.Module) -> float:
    """Turn LayerDrop off (the wav2vec 2.0 family reads it from its config, Whisper's
    encoder from an attribute); the probability it had."""
    config = model.config
    had = max(float(getattr(config, "layerdrop", 0.0) or 0.0), float(getattr(config, "encoder_layerdrop", 0.0) or 0.0),
              float(getattr(model, "layerdrop", 0.0) or 0.0))
    for key in ("layerdrop", "encoder_layerdrop"):
        if hasattr(config, key):
            setattr(config, key, 0.0)
    if isinstance(getattr(model, "layerdrop", None), float):
        model.layerdrop = 0.0
    return had


# ---------------------------------------------------------------------------- layer groups


def audio_layer_groups(backbone: AudioBackbone) -> list[list[str]]:
    """The conv feature encoder, what leads into the transformer, each transformer layer,
    what follows it; the layer weights go with the last group."""
    names = [name for name, _ in backbone.model.named_parameters()]
    stack = next((name for name, module in backbone.model.named_modules()
                  if name in ("encoder.layers", "layers") and isinstance(module, nn.ModuleList)), None)
    if stack is None:
        raise ValueError(f"{type(backbone.model).__name__} has no stack of transformer layers "
                         f"(encoder.layers or layers)")
    conv = [n for n in names if n.startswith(_CONV_PREFIXES)]
    blocks: dict[int, list[str]] = {}
    before, after = [], []
    for name in names:
        if name in conv:
            continue
        if name.startswith(stack + "."):
            blocks.setdefault(int(name[len(stack) + 1:].split(".")[0]), []).append(name)
        else:
            (after if blocks else before).append(name)
    groups = [g for g in (conv, before, *(blocks[i] for i in sorted(blocks)), after) if g]
    groups = [[f"model.{name}" for name in group] for group in groups]
    if backbone.layer_weights is not None:
        groups[-1].append("layer_weights")
    covered = sorted(n for g in groups for n in g)
    assert covered == sorted(n for n, _ in backbone.named_parameters()), "layer groups lost parameters"
    return groups


# ---------------------------------------------------------------------------- loading


def load_audio_source(folder: Path, config, *, pretrained: bool, layer_weighting: str, seconds: float | None,
                      meta: dict) -> SourceModel:
    """A speech encoder's folder as a `SourceModel` (random weights of the same
    architecture when not `pretrained`; the caller has seeded torch)."""
    from transformers import AutoFeatureExtractor, AutoModel, WhisperModel

    from .hf_models import quiet_transformers
    from .timm_models import state_digest

    if layer_weighting not in LAYER_WEIGHTINGS:
        raise ValueError(f"layer_weighting must be one of {LAYER_WEIGHTINGS}, got {layer_weighting!r}")
    whisper = is_whisper(config)
    with quiet_transformers():
        extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        if whisper:
            model = WhisperModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32) \
                if pretrained else WhisperModel(config)
            model = model.get_encoder()
        else:
            model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32) \
                if pretrained else AutoModel.from_config(config, dtype=torch.float32)
    model = model.float()
    if whisper:
        if seconds is not None:
            raise ValueError(f"seconds: Whisper's encoder takes exactly {extractor.chunk_length} s of audio "
                             f"(its feature extractor's chunk_length); leave seconds unset")
        seconds = float(extractor.chunk_length)
    routed = route_wavlm_attention(model)
    encoder = AudioEncoder(extractor, whisper)
    backbone = AudioBackbone(model, "input_features" if whisper else "input_values", encoder.with_mask)
    takes = AudioInput(encoder.rate, seconds)
    probe = encoder([Waveform(np.zeros(int(round((seconds or 1.0) * encoder.rate)), np.float32), encoder.rate)])
    backbone.eval()
    with torch.no_grad():
        out = model(**{backbone.input_name: probe[backbone.input_name]}, output_hidden_states=True)
    feature_dim = int(out.last_hidden_state.shape[-1])
    dropped = None
    if layer_weighting == "weighted":
        backbone.weigh_layers(len(out.hidden_states))
        dropped = _no_layerdrop(model)
    backbone.eval()  # writes the initial mix into the record
    groups = audio_layer_groups(backbone)
    record = {**meta, "pooling": "mean", "modality": "audio", "architecture": type(model).__name__,
              "layer_weighting": layer_weighting, **backbone.record}
    if dropped:
        record["layerdrop"] = f"off (was {dropped:g}): layer weighting reads every layer's output"
    if routed:
        record["attention"] = "WavLM attention through its projection modules"
    if whisper:
        record["padding"] = f"every example is padded to {seconds:g} s (Whisper's fixed input)"
    preprocessing = {"pooling": "mean", "layer_weighting": layer_weighting, "audio": takes.to_json(),
                     **encoder.identity()}
    source = SourceModel(backbone=backbone, feature_dim=feature_dim, modality="audio", encode=encoder,
                         layer_groups=groups, weights_id=state_digest(backbone),
                         preprocessing_id=json.dumps(preprocessing, sort_keys=True), pretrained=pretrained,
                         source_head=None, meta=record, audio=takes,
                         mixed_layers=len(backbone.layer_weights) if backbone.layer_weights is not None else None)
    backbone.record = source.meta
    return source
