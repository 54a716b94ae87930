"""The feature cache: frozen-backbone features, extracted once per example.

Features are keyed by the source's weights and preprocessing, then by a digest of each
example's content. A split is served from whatever examples are already cached and
only the missing ones are extracted, so seeds that sample different few-shot subsets,
different strategies and reruns of a suite share one extraction. Each extraction is
appended as one ``.npz`` chunk, written atomically; concurrent workers at worst
extract the same example twice.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .api import SourceModel
from .hashing import config_hash, examples_digests


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


@dataclass
class _Index:
    rows: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    chunks: list[np.ndarray] = field(default_factory=list)
    seen_files: set[str] = field(default_factory=set)


class FeatureCache:
    """On-disk, per-example cache of frozen features, shared across processes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stats = CacheStats()
        self._indexes: dict[str, _Index] = {}

    @staticmethod
    def key(source: SourceModel) -> str:
        return config_hash({"weights": source.weights_id, "preprocessing": source.preprocessing_id,
                            "feature_dim": source.feature_dim}, 24)

    def _refresh(self, key: str) -> _Index:
        index = self._indexes.setdefault(key, _Index())
        folder = self.root / key
        if folder.is_dir():
            for path in sorted(folder.glob("chunk-*.npz")):
                if path.name in index.seen_files:
                    continue
                with np.load(path) as data:
                    digests, features = data["digests"], data["features"]
                chunk_no = len(index.chunks)
                index.chunks.append(features)
                for row, digest in enumerate(digests):
                    index.rows.setdefault(digest.tobytes(), (chunk_no, row))
                index.seen_files.add(path.name)
        return index

    def features(self, source: SourceModel, examples: Sequence, extract,
                 digests: list[bytes] | None = None) -> np.ndarray:
        """Features of `examples` in order; `extract(indices)` computes missing ones."""
        key = self.key(source)
        digests = digests if digests is not None else examples_digests(examples)
        index = self._refresh(key)
        missing = [i for i, d in enumerate(digests) if d not in index.rows]
        unique_missing = list({digests[i]: i for i in missing}.values())
        self.stats.hits += len(digests) - len(missing)
        self.stats.misses += len(missing)
        if unique_missing:
            fresh = np.ascontiguousarray(extract(unique_missing), dtype=np.float32)
            new_digests = np.stack([np.frombuffer(digests[i], dtype=np.uint8) for i in unique_missing])
            self._write_chunk(key, new_digests, fresh)
            index = self._refresh(key)
        out = np.empty((len(digests), source.feature_dim), dtype=np.float32)
        for i, digest in enumerate(digests):
            chunk, row = index.rows[digest]
            out[i] = index.chunks[chunk][row]
        return out

    def _write_chunk(self, key: str, digests: np.ndarray, features: np.ndarray) -> None:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".chunk-", suffix=".npz", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, digests=digests, features=features)
        os.replace(tmp, folder / f"chunk-{uuid.uuid4().hex}.npz")
