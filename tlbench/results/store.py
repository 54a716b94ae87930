"""The record store: a directory of immutable JSON run records, written atomically.

A record is written to a temporary file, flushed to disk and renamed into place, so a
runner killed at any moment (even with SIGKILL) leaves either the old state or the
new record, never half a file. A failed record that a retry replaces is kept under
``attempts/``; an unreadable file is reported, kept under ``corrupt/`` and its run is
redone.

The writer is where records become publishable: every string path under the user's
home or a cache directory is made portable (`paths.portable`; never inside
``spec.identity``, which its run id hashes), and the record is sealed with its
integrity digest (`records.seal`). A record that already carries a digest (one copied
by `tlbench merge`) is written as it is, so that an edit made to it stays evident.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import portable
from .records import INTEGRITY, seal, validate_record


@dataclass
class StoreProblem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old one or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def jsonable(value):
    """Plain JSON data: numpy scalars and arrays (and tensors) to Python numbers and lists,
    NaN and infinities to null. Anything else JSON cannot hold is left for `json` to refuse."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy array or scalar, torch tensor
        value = value.tolist()
        if isinstance(value, list):
            return jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, payload: dict | list) -> None:
    text = json.dumps(jsonable(payload), indent=1, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


@dataclass
class RecordStore:
    root: Path
    problems: list[StoreProblem] = field(default_factory=list)
    cache_dirs: tuple[Path, ...] = ()
    """tlbench cache directories besides the default one (a suite's own ``cache_dir``),
    whose paths records name as ``<tlbench-cache>/...``."""

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def path_for(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def load_all(self) -> dict[str, dict]:
        """Every valid record by run id; unreadable or invalid files go to `problems`."""
        self.problems = []
        records: dict[str, dict] = {}
        if not self.root.is_dir():
            return records
        for path in sorted(self.root.glob("*.json")):
            record = self._read(path)
            if record is not None:
                records[record["run_id"]] = record
        return records

    def _read(self, path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.problems.append(StoreProblem(path, f"unreadable record ({exc}); its run will be redone"))
            return None
        problems = validate_record(record)
        if not problems and path.stem != record["run_id"]:
            problems = [f"file name does not match run_id {record['run_id']!r}"]
        if problems:
            self.problems.append(StoreProblem(path, f"invalid record ({problems[0]}); its run will be redone"))
            return None
        return record

    def write(self, record: dict) -> Path:
        """Store a record; keep what it replaces (a failed attempt, a corrupt file). The
        record is updated in place to what is stored: plain JSON, portable paths, sealed."""
        stored = jsonable(record)
        if INTEGRITY not in stored:
            stored = seal(portable(stored, self.cache_dirs, keep=("spec.identity",)))
        record.clear()
        record.update(stored)
        path = self.path_for(record["run_id"])
        if path.exists():
            self._keep_replaced(path)
        write_json_atomic(path, record)
        return path

    def _keep_replaced(self, path: Path) -> None:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            folder = "attempts"
            name = f"{path.stem}.{old.get('attempt', 0)}.json" if isinstance(old, dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            folder, name = "corrupt", None
        name = name or f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.json"
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        os.replace(path, self.root / folder / name)
