"""The feature cache: frozen-backbone features, extracted once per example.

What identifies a split's features is the source's weights (`weights_id`), its
preprocessing (`preprocessing_id`) and the content of the split's examples, in order.
The cache stores them per example: one folder per (weights, preprocessing, feature
size), and in it rows addressed by each example's content digest, the same digests
that make up a target's content hash. So a split is a hit exactly when every one of
its examples was extracted before by the same weights and preprocessing, whatever
seed, split name, strategy or suite run drew it; seeds that sample different few-shot
subsets of one data set share one extraction, and a changed example misses.

Each extraction of missing examples is written as one chunk of two ``.npy`` files
(features, then the digests that commit the chunk), atomically; chunks are read back
memory-mapped. Concurrent workers at worst extract the same example twice.
"""

from __future__ import annotations

import functools

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..api import SourceModel
from ..hashing import config_hash, examples_digests

FORMAT = 2
"""Bumped when the on-disk layout changes; part of every cache key."""


@dataclass
class CacheStats:
    hits: int = 0
    """Examples served from the cache."""
    misses: int = 0
    """Examples that had to be extracted."""


@dataclass
class _Index:
    rows: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    chunks: list[np.ndarray] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


@functools.cache
def _audio_libraries() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("soxr", "soundfile")}


def _model_libraries() -> tuple:
    """Versions of the libraries that compute a forward pass: an upgrade that changes a
    model's features must not be served features of the old one."""
    from ..provenance import library_versions

    versions = library_versions()
    return tuple((name, versions.get(name)) for name in ("torch", "timm", "transformers"))


def _numerics(device: str) -> str:
    """The device settings that change features' last bits: the device kind, and on CUDA
    whether TF32 is allowed for matrix products and convolutions."""
    kind = device.split(":")[0]
    if kind != "cuda":
        return kind
    import torch

    return f"cuda tf32={torch.backends.cuda.matmul.allow_tf32},{torch.backends.cudnn.allow_tf32}"


class FeatureCache:
    """On-disk, per-example cache of frozen features, shared across processes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stats = CacheStats()
        self._indexes: dict[str, _Index] = {}

    @staticmethod
    def key(source: SourceModel, device: str = "cpu", view: str = "pooled") -> str:
        """The folder of `source`'s features: its weights, preprocessing and feature size,
        the libraries that compute them, and the kind of device (GPU kernels, TF32 on
        by default for cuDNN convolutions, give other last bits than the CPU's). An audio
        source's examples are keyed by their raw content, before tlbench conditions them to
        the rate and length the source takes: those are part of the key, with the
        resampler's version. `view` 'layers' keys the per-layer features of a backbone that
        mixes its layers (`SourceModel.mixed_layers`), kept apart from its pooled ones."""
        key = {"format": FORMAT, "weights": source.weights_id, "preprocessing": source.preprocessing_id,
               "feature_dim": int(source.feature_dim), "libraries": _model_libraries(), "device": _numerics(device)}
        if view != "pooled":
            key["view"] = view
        if getattr(source, "audio", None) is not None:
            key["audio"] = source.audio.to_json() | {"libraries": _audio_libraries()}
        return config_hash(key, 24)

    def _refresh(self, key: str) -> _Index:
        """Pick up chunks written since the last look (by this or another process)."""
        index = self._indexes.setdefault(key, _Index())
        folder = self.root / key
        if not folder.is_dir():
            return index
        for digests_path in sorted(folder.glob("*.digests.npy")):
            stem = digests_path.name.removesuffix(".digests.npy")
            if stem in index.seen:
                continue
            digests = np.load(digests_path)
            features = np.load(folder / f"{stem}.features.npy", mmap_mode="r")
            chunk_no = len(index.chunks)
            index.chunks.append(features)
            for row, digest in enumerate(digests):
                index.rows.setdefault(digest.tobytes(), (chunk_no, row))
            index.seen.add(stem)
        return index

    def features(self, source: SourceModel, examples: Sequence,
                 extract: Callable[[list[int]], np.ndarray],
                 digests: list[bytes] | None = None, device: str = "cpu", view: str = "pooled") -> np.ndarray:
        """Features of `examples`, in order, as a new float32 array.

        `extract(indices)` computes the features of ``examples[i]`` for the given indices;
        it is called once, for the examples the cache lacks (each distinct one once).
        `digests` are the examples' content digests when the caller has them already.
        `view` 'layers': every mixed layer's pooled features, flattened to one row
        (``mixed_layers * feature_dim`` values).
        """
        key = self.key(source, device, view)
        width = source.feature_dim * (source.mixed_layers if view == "layers" else 1)
        digests = digests if digests is not None else examples_digests(examples)
        index = self._refresh(key)
        missing = [i for i, digest in enumerate(digests) if digest not in index.rows]
        self.stats.hits += len(digests) - len(missing)
        self.stats.misses += len(missing)
        first_of: dict[bytes, int] = {}
        for i in missing:
            first_of.setdefault(digests[i], i)
        unique_missing = list(first_of.values())
        if unique_missing:
            fresh = np.ascontiguousarray(extract(unique_missing), dtype=np.float32)
            if fresh.shape != (len(unique_missing), width):
                raise ValueError(f"feature extraction returned shape {fresh.shape}, expected "
                                 f"{(len(unique_missing), width)}")
            self._write_chunk(key, [digests[i] for i in unique_missing], fresh)
            index = self._refresh(key)
        return self._gather(index, digests, width)

    @staticmethod
    def _gather(index: _Index, digests: list[bytes], dim: int) -> np.ndarray:
        out = np.empty((len(digests), dim), dtype=np.float32)
        by_chunk: dict[int, tuple[list[int], list[int]]] = {}
        for i, digest in enumerate(digests):
            chunk, row = index.rows[digest]
            targets, rows = by_chunk.setdefault(chunk, ([], []))
            targets.append(i)
            rows.append(row)
        for chunk, (targets, rows) in by_chunk.items():
            out[targets] = index.chunks[chunk][rows]
        return out

    def _write_chunk(self, key: str, digests: list[bytes], features: np.ndarray) -> None:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        stem = uuid.uuid4().hex
        # the features first, the digests last: a chunk exists once its digests do
        _save_atomic(folder / f"{stem}.features.npy", features)
        _save_atomic(folder / f"{stem}.digests.npy",
                     np.stack([np.frombuffer(d, dtype=np.uint8) for d in digests]))


def _save_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
