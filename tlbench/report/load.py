"""Reading records from result directories, trusting none of them.

Reports and `tlbench merge` read records that other machines and other people wrote.
Every file is checked before it is used: it must parse, pass the record schema, carry
finite and plausible metrics, and (when it states its identity) have the run id that
identity hashes to. A file that fails is reported by path and skipped, never half-used.

Record kinds are looked up in `KINDS` (runs and transferability estimates); a new kind
adds one entry naming its folder, its checks and its id, and the loader reads it too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..hashing import canonical_json, config_hash
from ..results.records import validate_record
from ..results.store import StoreProblem

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record is a few kilobytes (tracebacks included); anything this big is not one."""

_ID = re.compile(r"[0-9A-Za-z]{8,64}")
FRACTIONS = ("test_accuracy", "train_accuracy", "val_accuracy", "baseline_test_accuracy")
SIGNED_FRACTIONS = ("overfitting_gap", "negative_transfer")


@dataclass(frozen=True)
class RecordKind:
    name: str
    """The record's `kind` field."""
    folder: str
    """Where a result directory keeps records of this kind."""
    check: Callable[[Any], list[str]]
    """Problems that make a record unusable; empty when it is fine."""
    id_of: Callable[[dict], str]


def check_run_record(record: Any) -> list[str]:
    """Schema problems, then implausible metrics, then an identity that does not hash to
    the run id (a record edited by hand, or copied under the wrong name)."""
    problems = validate_record(record)
    if problems:
        return problems
    for key, value in record["metrics"].items():
        if value is None:
            continue
        if not math.isfinite(value):
            problems.append(f"metrics.{key} is not finite")
        elif key in FRACTIONS and not 0 <= value <= 1:
            problems.append(f"metrics.{key} is {value}, expected a fraction in [0, 1]")
        elif key in SIGNED_FRACTIONS and not -1 <= value <= 1:
            problems.append(f"metrics.{key} is {value}, expected a value in [-1, 1]")
        elif key not in FRACTIONS + SIGNED_FRACTIONS and value < 0:
            problems.append(f"metrics.{key} is negative")
    return problems + identity_problems(record)


def identity_problems(record: dict) -> list[str]:
    spec = record["spec"]
    identity = spec.get("identity")
    if identity is None:
        return []
    if not isinstance(identity, dict):
        return ["spec.identity is not an object"]
    if config_hash(identity, len(record["run_id"])) != record["run_id"]:
        return ["run_id is not the hash of spec.identity"]
    problems = []
    for part in ("source", "target", "strategy"):
        stated = identity.get(part) if isinstance(identity.get(part), dict) else {}
        for key in ("plugin", "version"):
            if stated.get(key) != spec[part][key]:
                problems.append(f"spec.{part}.{key} differs from spec.identity.{part}.{key}")
    if identity.get("seed") != spec["seed"]:
        problems.append("spec.seed differs from spec.identity.seed")
    target = identity.get("target") if isinstance(identity.get("target"), dict) else {}
    if target.get("content_hash") != spec["target"].get("content_hash"):
        problems.append("spec.target.content_hash differs from spec.identity.target.content_hash")
    return problems


def check_estimate_record(record: Any) -> list[str]:
    problems = validate_record(record)
    if problems:
        return problems
    score = record["metrics"].get("score")
    if score is not None and not math.isfinite(score):
        problems.append("metrics.score is not finite")
    identity = record["spec"].get("identity")
    if isinstance(identity, dict) and config_hash(identity, len(record["run_id"])) != record["run_id"]:
        problems.append("run_id is not the hash of spec.identity")
    return problems


KINDS: dict[str, RecordKind] = {
    "run": RecordKind("run", "runs", check_run_record, lambda record: record["run_id"]),
    "estimate": RecordKind("estimate", "estimates", check_estimate_record, lambda record: record["run_id"]),
}


@dataclass
class Loaded:
    record: dict
    path: Path


@dataclass
class Duplicate:
    record_id: str
    kept: Path
    dropped: Path
    identical: bool

    def __str__(self) -> str:
        how = "identical" if self.identical else "different content; kept the first ok one"
        return f"{self.dropped}: duplicate of {self.kept} ({how})"


@dataclass
class Collection:
    """Valid records, one per id, with where each came from and what was left out."""

    records: list[Loaded] = field(default_factory=list)
    problems: list[StoreProblem] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    valid_per_dir: dict[str, int] = field(default_factory=dict)
    """input directory → how many valid records it held (duplicates included)."""

    def of_kind(self, kind: str) -> list[dict]:
        return [item.record for item in self.records if item.record.get("kind") == kind]


def kind_folders(directory: Path) -> list[tuple[RecordKind, Path]]:
    """The record folders of a result directory; a folder of run records itself is accepted."""
    directory = Path(directory)
    found = [(kind, directory / kind.folder) for kind in KINDS.values() if (directory / kind.folder).is_dir()]
    return found or [(KINDS["run"], directory)]


def record_files(directory: Path, folder: Path) -> list[Path]:
    """Every JSON file of a record folder (each one is checked and reported); when the
    result directory itself is the folder, only files named like records (``<id>.json``),
    so that a report's own summary.json is not taken for a broken record."""
    files = sorted(folder.glob("*.json"))
    return files if folder != directory else [path for path in files if _ID.fullmatch(path.stem)]


def read_record(path: Path, kind: RecordKind) -> tuple[dict | None, str | None]:
    """(record, None) for a usable file, (None, why) otherwise."""
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None, f"file is larger than {MAX_RECORD_BYTES // 2**20} MiB"
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"unreadable JSON ({str(exc)[:200]})"
    if isinstance(record, dict) and record.get("kind") != kind.name:
        return None, f"kind is {record.get('kind')!r}, expected {kind.name!r} in {kind.folder}/"
    problems = kind.check(record)
    if not problems and path.stem != kind.id_of(record):
        problems = [f"file name does not match its id {kind.id_of(record)!r}"]
    if problems:
        return None, "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    return record, None


def collect(dirs: list[Path]) -> Collection:
    """Every valid record under `dirs`, one per id: an ok record is preferred over a
    failed one, and otherwise the first directory given wins."""
    collection = Collection()
    chosen: dict[tuple[str, str], int] = {}
    for directory in dirs:
        collection.valid_per_dir.setdefault(str(directory), 0)
        for kind, folder in kind_folders(Path(directory)):
            for path in record_files(Path(directory), folder):
                record, why = read_record(path, kind)
                if record is None:
                    collection.problems.append(StoreProblem(path, f"skipped: {why}"))
                    continue
                collection.valid_per_dir[str(directory)] += 1
                key = (kind.name, kind.id_of(record))
                if key not in chosen:
                    chosen[key] = len(collection.records)
                    collection.records.append(Loaded(record, path))
                    continue
                kept = collection.records[chosen[key]]
                identical = canonical_json(kept.record) == canonical_json(record)
                if kept.record.get("status") != "ok" and record.get("status") == "ok":
                    collection.records[chosen[key]] = Loaded(record, path)
                    collection.duplicates.append(Duplicate(key[1], path, kept.path, identical))
                else:
                    collection.duplicates.append(Duplicate(key[1], kept.path, path, identical))
    return collection
