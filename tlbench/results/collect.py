"""Reading records from result directories, trusting none of them.

Reports and `tlbench merge` read records that other machines and other people wrote.
Every file is checked before it is used (`records.validate_record`): it must parse,
pass the record schema, carry finite metrics within their ranges, and have the run id
its identity hashes to. A file that fails is reported by path and skipped, never
half-used. Each run kind's records live in the kind's folder (`kinds.RUN_KINDS`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..hashing import canonical_json
from .kinds import RUN_KINDS, RunKind
from .records import validate_record
from .store import StoreProblem

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record is a few kilobytes (tracebacks included); anything this big is not one."""

_ID = re.compile(r"[0-9A-Za-z]{8,64}")


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
    found_in: str = ""
    """The directory (as given) of the copy read second: the one found to duplicate a
    record read before it, whichever of the two is kept."""

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


def kind_folders(directory: Path) -> list[tuple[RunKind, Path]]:
    """The record folders of a result directory; a folder of run records itself is accepted."""
    directory = Path(directory)
    found = [(kind, directory / kind.folder) for kind in RUN_KINDS.values() if (directory / kind.folder).is_dir()]
    return found or [(RUN_KINDS["run"], directory)]


def record_files(directory: Path, folder: Path) -> list[Path]:
    """Every JSON file of a record folder (each one is checked and reported); when the
    result directory itself is the folder, only files named like records (``<id>.json``),
    so that a report's own summary.json is not taken for a broken record."""
    files = sorted(folder.glob("*.json"))
    return files if folder != directory else [path for path in files if _ID.fullmatch(path.stem)]


def read_record(path: Path, kind: RunKind) -> tuple[dict | None, str | None]:
    """(record, None) for a usable file, (None, why) otherwise."""
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None, f"file is larger than {MAX_RECORD_BYTES // 2**20} MiB"
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"unreadable JSON ({str(exc)[:200]})"
    if isinstance(record, dict) and record.get("kind") != kind.name:
        return None, f"kind is {record.get('kind')!r}, expected {kind.name!r} in {kind.folder}/"
    problems = validate_record(record)
    if not problems and path.stem != record["run_id"]:
        problems = [f"file name does not match its id {record['run_id']!r}"]
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
                key = (kind.name, record["run_id"])
                if key not in chosen:
                    chosen[key] = len(collection.records)
                    collection.records.append(Loaded(record, path))
                    continue
                kept = collection.records[chosen[key]]
                identical = canonical_json(kept.record) == canonical_json(record)
                if kept.record.get("status") != "ok" and record.get("status") == "ok":
                    collection.records[chosen[key]] = Loaded(record, path)
                    collection.duplicates.append(Duplicate(key[1], path, kept.path, identical, str(directory)))
                else:
                    collection.duplicates.append(Duplicate(key[1], kept.path, path, identical, str(directory)))
    return collection
