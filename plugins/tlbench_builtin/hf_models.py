"""transformers encoders as tlbench sources: loading, pooling, encoders and layer groups.

A model folder (a local directory or a cached hub snapshot) becomes a `SourceModel`:
an AutoModel whose output is pooled to one vector per example (the CLS token, a masked
mean, or the model's own pooler), the tokenizer or image processor that turns raw
examples into its inputs, and layer groups read off the encoder's stack of blocks.
Speech encoders (wav2vec 2.0, HuBERT, WavLM, Whisper) are built by `hf_audio`.
Imported only when a source is built, never at registration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from tlbench.api import SourceModel

POOLINGS = ("auto", "cls", "mean", "pooler")
WORD_STARTS = "tlbench_word_starts"
"""The input `TextEncoder.words` adds for `PooledEncoder.forward_tokens`: per example and
word, 1 + the position of the word's first sub-token; 0 after the example's last word;
-1 for a word without a sub-token (cut off by `max_length`, or dropped by the tokenizer)."""


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars or load reports from transformers while tlbench loads a model."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def modality_of(config) -> str:
    """'audio' for speech encoders, 'text' for token encoders, 'image' for pixel encoders
    (from the model's config)."""
    from .hf_source import config_modality

    if config_modality(config.to_dict()) == "audio":
        return "audio"
    if getattr(config, "num_channels", None) and not getattr(config, "vocab_size", None):
        return "image"
    if getattr(config, "vocab_size", None):
        return "text"
    raise ValueError(f"{type(config).__name__} is neither a text encoder (vocab_size) nor an image encoder "
                     f"(num_channels); composite models are not supported, point at one of their encoders")


# ---------------------------------------------------------------------------- encoders


class TextEncoder:
    """Texts to token tensors with the model's tokenizer.

    Pickles without the tokenizer and reloads it from the model folder in a new process
    (and after a fork), so DataLoader workers never share a tokenizer's thread pool.
    """

    def __init__(self, folder: str, max_length: int, tokenizer=None):
        self.folder, self.max_length = folder, max_length
        self._tokenizer, self._pid = tokenizer, os.getpid()
        self._prefixed = None
        self.input_names = list(self.tokenizer().model_input_names)

    def tokenizer(self):
        if self._tokenizer is None or self._pid != os.getpid():
            from transformers import AutoTokenizer

            with quiet_transformers():
                self._tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self._pid = os.getpid()
        return self._tokenizer

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tokenizer": None, "_prefixed": None}

    def identity(self) -> dict:
        tokenizer = self.tokenizer()
        backend = getattr(tokenizer, "backend_tokenizer", None)
        text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
        return {"tokenizer": type(tokenizer).__name__, "max_length": self.max_length,
                "inputs": self.input_names, "sha256": hashlib.sha256(text.encode()).hexdigest()}

    def __call__(self, examples: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer()([str(e) for e in examples], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return {name: batch[name] for name in self.input_names if name in batch}

    def words_refused(self) -> str | None:
        """Why this tokenizer cannot encode word lists, or None: only a fast tokenizer
        (the `tokenizers` library) says which word each sub-token came from."""
        tokenizer = self.tokenizer()
        if not getattr(tokenizer, "is_fast", False):
            return (f"{type(tokenizer).__name__} is not a fast tokenizer; mapping sub-tokens to words "
                    f"(word_ids) needs one")
        return None

    def words(self, examples: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """Pre-tokenised examples (lists of words) to token tensors plus `WORD_STARTS`, the
        position of each word's first sub-token, which `PooledEncoder.forward_tokens` gathers
        so that every word has one position (see `tlbench.api.SourceModel`). Words past
        `max_length` keep their place with no vector (-1)."""
        refused = self.words_refused()
        if refused:
            raise ValueError(refused)
        lists = [[str(word) for word in example] for example in examples]
        batch = self._word_tokenizer()(lists, is_split_into_words=True, padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
        starts = torch.zeros((len(lists), max([1, *map(len, lists)])), dtype=torch.long)
        for row, words in enumerate(lists):
            first: dict[int, int] = {}
            for position, word in enumerate(batch.word_ids(row)):
                if word is not None:
                    first.setdefault(word, position)
            starts[row, :len(words)] = torch.tensor([first[w] + 1 if w in first else -1 for w in range(len(words))],
                                                    dtype=torch.long)
        return {**{name: batch[name] for name in self.input_names if name in batch}, WORD_STARTS: starts}

    def _word_tokenizer(self):
        """The tokenizer for words: byte-level BPE tokenizers (RoBERTa, GPT-2) mark a word's
        start by a space before it, so they take words only with ``add_prefix_space`` (the
        setting transformers' token-classification examples use)."""
        import inspect

        tokenizer = self.tokenizer()
        takes = "add_prefix_space" in inspect.signature(type(tokenizer).__init__).parameters
        if takes and getattr(tokenizer, "add_prefix_space", True) is False:
            if self._prefixed is None or self._prefixed[0] != os.getpid():
                from transformers import AutoTokenizer

                with quiet_transformers():
                    self._prefixed = (os.getpid(), AutoTokenizer.from_pretrained(self.folder, local_files_only=True,
                                                                                 add_prefix_space=True))
            return self._prefixed[1]
        return tokenizer


class PixelEncoder:
    """Images to pixel tensors with the model's own image processor (picklable)."""

    def __init__(self, processor):
        self.processor = processor

    def identity(self) -> dict:
        config = json.loads(self.processor.to_json_string())
        return {"processor": type(self.processor).__name__,
                "sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()}

    def __call__(self, examples: Sequence[Any]) -> torch.Tensor:
        from .image_examples import to_rgb_uint8

        arrays = [to_rgb_uint8(example) for example in examples]
        return self.processor(images=arrays, return_tensors="pt")["pixel_values"].float()


# ---------------------------------------------------------------------------- the backbone


class PooledEncoder(nn.Module):
    """An AutoModel whose output is pooled to (batch, features)."""

    def __init__(self, model: nn.Module, pooling: str):
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward_tokens(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's last hidden states (batch, tokens, dim) and their attention mask;
        on inputs from `TextEncoder.words`, one position per word instead: the hidden state
        of its first sub-token (batch, words, dim), and a mask of 1 for words with a vector,
        0 after the last word, -1 for words without one (whose rows are zeros)."""
        starts = inputs.get(WORD_STARTS)
        hidden = self.model(**_model_inputs(inputs)).last_hidden_state
        if starts is not None:
            index = (starts - 1).clamp_min(0).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
            kept = starts > 0
            words = hidden.gather(1, index) * kept.unsqueeze(-1).to(hidden.dtype)
            return words, kept.long() - (starts < 0).long()
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return hidden, mask

    def forward(self, inputs) -> torch.Tensor:
        out = self.model(**_model_inputs(inputs)) if isinstance(inputs, dict) else self.model(pixel_values=inputs)
        if self.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # a convolutional feature map (batch, channels, h, w)
            return hidden.mean(dim=(2, 3))
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        if mask is None:
            return hidden.mean(dim=1)
        mask = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)


def _model_inputs(inputs: dict) -> dict:
    """The model's own inputs, without the word positions `TextEncoder.words` adds."""
    return {key: value for key, value in inputs.items() if key != WORD_STARTS}


def resolve_pooling(pooling: str, folder: Path, model: nn.Module, modality: str) -> str:
    """'auto': a sentence-transformers folder's own pooling, the pooler of convolutional
    image models, else the CLS token."""
    if pooling != "auto":
        return pooling
    st_config = folder / "1_Pooling" / "config.json"
    if st_config.is_file():
        modes = json.loads(st_config.read_text(encoding="utf-8"))
        if modes.get("pooling_mode_mean_tokens"):
            return "mean"
        if modes.get("pooling_mode_cls_token"):
            return "cls"
    if modality == "image" and "hidden_sizes" in model.config.to_dict():  # ConvNeXt, ResNet, ...
        return "pooler"
    return "cls"


def _main_stack(module: nn.Module, min_share: float) -> tuple[str, nn.ModuleList] | None:
    """The ModuleList of at least 2 blocks with the most parameters, if it holds at least
    `min_share` of `module`'s."""
    total = sum(p.numel() for p in module.parameters())
    best, best_size = None, 0
    for name, child in module.named_modules():
        if name and isinstance(child, nn.ModuleList) and len(child) > 1:
            size = sum(p.numel() for p in child.parameters())
            if size > best_size:
                best, best_size = (name, child), size
    return best if best is not None and best_size >= min_share * total else None


def _groups(module: nn.Module, prefix: str, depth: int) -> list[list[str]]:
    """The encoder's main stack of blocks splits the model (embeddings, each block, final
    norm); a block is split again only when blocks of its own make up most of it."""
    names = [prefix + name for name, _ in module.named_parameters()]
    stack = _main_stack(module, 0.0 if not prefix else 0.5) if depth > 0 else None
    if stack is None:
        return [names] if names else []
    stack_name, blocks = stack
    before, after, inner = [], [], []
    start = f"{prefix}{stack_name}."
    for block_index, block in enumerate(blocks):
        inner += _groups(block, f"{start}{block_index}.", depth - 1)
    in_stack = {n for group in inner for n in group}
    seen_stack = False
    for name in names:
        if name in in_stack:
            seen_stack = True
        else:
            (after if seen_stack else before).append(name)
    return [g for g in (before, *inner, after) if g]


def layer_groups(backbone: nn.Module) -> list[list[str]]:
    """Parameter names from the embeddings through each block to the final norm/pooler;
    stages that hold blocks of their own are split into those blocks."""
    groups = _groups(backbone, "", depth=2)
    covered = [n for g in groups for n in g]
    assert sorted(covered) == sorted(n for n, _ in backbone.named_parameters()), "layer groups lost parameters"
    return groups


def load_source(folder: Path, *, pretrained: bool, pooling: str, max_length: int, meta: dict,
                layer_weighting: str = "last", seconds: float | None = None) -> SourceModel:
    """A model folder as a `SourceModel` (random weights of the same architecture when
    not `pretrained`; the caller has seeded torch)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

    from .timm_models import state_digest

    with quiet_transformers():
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        modality = modality_of(config)
    if modality == "audio":
        from .hf_audio import load_audio_source

        if pooling not in ("auto", "mean"):
            raise ValueError(f"pooling: a speech encoder's features are the mean over its frames; "
                             f"use 'mean' or 'auto', not {pooling!r}")
        return load_audio_source(folder, config, pretrained=pretrained, layer_weighting=layer_weighting,
                                 seconds=seconds, meta=meta)
    for key, value, default in (("layer_weighting", layer_weighting, "last"), ("seconds", seconds, None)):
        if value != default:
            raise ValueError(f"{key}: only for speech encoders; {type(config).__name__} is a {modality} model")
    with quiet_transformers():
        if pretrained:
            model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        else:
            model = AutoModel.from_config(config, dtype=torch.float32)
        if modality == "text":
            encoder = TextEncoder(str(folder), max_length,
                                  AutoTokenizer.from_pretrained(folder, local_files_only=True))
        else:
            encoder = PixelEncoder(AutoImageProcessor.from_pretrained(folder, local_files_only=True))
    pooling = resolve_pooling(pooling, folder, model, modality)
    if pooling == "pooler" and not _has_pooler(model, modality, encoder):
        raise ValueError(f"pooling: {type(model).__name__} has no pooler output; use 'cls' or 'mean'")
    if pooling != "pooler" and isinstance(getattr(model, "pooler", None), nn.Module):
        model.pooler = None  # unused: keep its parameters out of training and counts
    backbone = PooledEncoder(model, pooling)
    backbone.eval()
    with torch.no_grad():
        feature_dim = int(backbone(encoder([_probe_example(modality)])).shape[-1])
    token_dim = int(getattr(model.config, "hidden_size", feature_dim)) if modality == "text" else None
    refused = encoder.words_refused() if modality == "text" else None
    words = {"encode_words": refused} if refused else {}  # why word lists cannot be encoded, for the run's error
    return SourceModel(backbone=backbone, feature_dim=feature_dim, modality=modality, encode=encoder,
                       layer_groups=layer_groups(backbone), weights_id=state_digest(backbone), token_dim=token_dim,
                       preprocessing_id=json.dumps({"pooling": pooling, **encoder.identity()}, sort_keys=True),
                       pretrained=pretrained, source_head=None,
                       encode_words=encoder.words if modality == "text" and not refused else None,
                       meta={**meta, "pooling": pooling, "modality": modality,
                             "architecture": type(model).__name__, **words})


def _probe_example(modality: str):
    import numpy as np

    return "a" if modality == "text" else np.zeros((32, 32, 3), dtype=np.uint8)


def _has_pooler(model: nn.Module, modality: str, encoder) -> bool:
    with torch.no_grad():
        inputs = encoder([_probe_example(modality)])
        out = model(**inputs) if isinstance(inputs, dict) else model(pixel_values=inputs)
    return getattr(out, "pooler_output", None) is not None
