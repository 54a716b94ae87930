"""Content identities: canonical JSON hashes for configs, and hashes of examples.

Two runs prove they used the same data by equal content hashes of the examples they
actually used, in order, with their labels. Labels are encoded by their task type
(`tlbench.api.Task.label_bytes`), losslessly: two regression targets that differ only
after the decimal point have different hashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from .api import canonical_label_bytes


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def config_hash(value: Any, length: int = 16) -> str:
    """Short stable hash of a JSON-able value (sorted keys)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def example_digest(example: Any) -> bytes:
    """16-byte digest of one raw example (array, PIL image, text, bytes, file path or
    waveform: its samples and its rate)."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(example, str):
        digest.update(b"s")
        digest.update(example.encode("utf-8"))
    elif isinstance(example, (bytes, bytearray, memoryview)):
        digest.update(b"b")
        digest.update(example)
    elif isinstance(example, Path):
        digest.update(b"f")
        digest.update(example.read_bytes())
    elif hasattr(example, "samples") and hasattr(example, "rate"):  # audio (api.Waveform)
        import numpy as np

        array = np.ascontiguousarray(example.samples)
        digest.update(f"w{int(example.rate)}{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    elif hasattr(example, "tobytes") and hasattr(example, "dtype"):  # numpy array
        import numpy as np

        array = np.ascontiguousarray(example)
        digest.update(f"a{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    elif hasattr(example, "tobytes") and hasattr(example, "mode"):  # PIL image
        digest.update(f"i{example.mode}{example.size}".encode())
        digest.update(example.tobytes())
    else:
        digest.update(b"j")
        digest.update(canonical_json(example).encode())
    return digest.digest()


def examples_digests(examples: Iterable[Any]) -> list[bytes]:
    return [example_digest(example) for example in examples]


LabelBytes = Callable[[Any], bytes]


def split_hash(digests: list[bytes], labels: Any, label_bytes: LabelBytes = canonical_label_bytes) -> str:
    """Hash of one split: each example's digest followed by its label's bytes. A split
    without labels (unlabelled data) hashes its examples alone."""
    digest = hashlib.sha256()
    if labels is None:
        for example in digests:
            digest.update(example)
        return "unlabelled:" + digest.hexdigest()
    if len(labels) != len(digests):
        raise ValueError(f"{len(digests)} examples but {len(labels)} labels")
    for example, label in zip(digests, labels):
        digest.update(example)
        digest.update(label_bytes(label))
    return digest.hexdigest()


def splits_content_hash(splits, label_bytes: LabelBytes = canonical_label_bytes
                        ) -> tuple[str, dict[str, list[bytes]]]:
    """Content hash of train / val / test (examples in order, with labels encoded by
    `label_bytes`, the task's), and the per-example digests, which the feature cache reuses."""
    digests = {name: examples_digests(split.examples) for name, split in splits.items()}
    combined = hashlib.sha256()
    for name, split in splits.items():
        combined.update(name.encode())
        combined.update(split_hash(digests[name], split.labels, label_bytes).encode())
    return combined.hexdigest(), digests
