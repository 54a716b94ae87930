"""Saved predictions: a run's test predictions, kept beside the records, by content.

With ``save_predictions = true`` (in ``[suite]`` or in a strategy's table) a run keeps
what its strategy predicted for the test split, in the form its task saves
(`Task.saved_predictions`: by default as `Objective.predictions` gave them, class
logits, probabilities, values; a COCO results list for boxes): for error analysis, and
so that anyone can recompute a metric from them. An array is stored as a compressed ``.npz`` (its one
array under the name of the split), anything else as JSON. The file is named by the
SHA-256 of its bytes, in ``predictions/`` of the result directory, and the record
refers to it (``details.predictions``: path, sha256, format, split, count), so a record
and its predictions cannot drift apart unnoticed (`tlbench validate` checks the digest).

The worker cannot write into the result directory (the driver alone writes; a Ray
worker may be another machine), so the file travels back with the record as an
attachment (`ATTACHMENTS`, base64), which the driver writes and removes before the
record is stored.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

FOLDER = "predictions"
ATTACHMENTS = "attachments"
"""The record key attachments travel under from a worker to the driver (never stored)."""


def encode(predictions: Any, split: str) -> tuple[bytes, str]:
    """(file bytes, format) of one split's predictions: 'npz' for an array, else 'json'."""
    import numpy as np

    if isinstance(predictions, np.ndarray):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{split: predictions})
        return buffer.getvalue(), "npz"
    from .store import jsonable

    return json.dumps(jsonable(predictions), sort_keys=True, separators=(",", ":")).encode("utf-8"), "json"


def attach(details: dict, attachments: dict, predictions: Any, split: str) -> None:
    """Reference `predictions` in a record's `details` and add their bytes to `attachments`."""
    data, fmt = encode(predictions, split)
    digest = hashlib.sha256(data).hexdigest()
    details["predictions"] = {"path": f"{FOLDER}/{digest}.{fmt}", "sha256": digest, "format": fmt, "split": split,
                              "count": len(predictions)}
    attachments[digest] = base64.b64encode(data).decode("ascii")


def write_attachments(record: dict, directory: Path) -> None:
    """Write a record's attachments into `directory` (content-addressed, atomically) and
    remove them from the record."""
    from .store import write_bytes_atomic

    reference = (record.get("details") or {}).get("predictions") or {}
    for digest, encoded in (record.pop(ATTACHMENTS, None) or {}).items():
        data = base64.b64decode(encoded)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"record {record.get('run_id')}: an attachment does not match its digest")
        path = Path(directory) / (reference.get("path") or f"{FOLDER}/{digest}")
        if not path.exists():
            write_bytes_atomic(path, data)


def load(path: Path, split: str = "test") -> Any:
    """The predictions a saved file holds."""
    import numpy as np

    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return archive[split]
    return json.loads(path.read_text(encoding="utf-8"))


def problem(record: dict, directory: Path) -> str | None:
    """Why a record's saved predictions cannot be trusted (None when they can, or when it
    saved none): the file is missing, or its bytes are not the ones the record names."""
    reference = (record.get("details") or {}).get("predictions")
    if not isinstance(reference, dict):
        return None
    path = Path(directory) / str(reference.get("path", ""))
    if not path.is_file():
        return f"its saved predictions {reference.get('path')} are missing"
    if hashlib.sha256(path.read_bytes()).hexdigest() != reference.get("sha256"):
        return f"its saved predictions {reference.get('path')} do not match their sha256"
    return None
