"""`tlbench merge`: combine result directories from several machines or contributors.

Records are copied into one result directory, so that a single report covers them all.
Nothing from an input is trusted: each record passes the same checks a report applies
(`collect`), and a record that fails is reported by path and left out. A run id seen
twice is kept once (an ok record over a failed one, otherwise the one already in the
output, then the first input given). Records that disagree about a target's data
(different content hashes for the same target and seed) or that come from different
plugin versions are all kept, since their run ids differ; the report of the merged
directory places them in separate cells, never pools them, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..hashing import canonical_json
from .collect import Duplicate, collect, kind_folders
from .kinds import RUN_KINDS
from .store import RecordStore, StoreProblem


@dataclass
class MergeResult:
    out: Path
    written: int = 0
    unchanged: int = 0
    problems: list[StoreProblem] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    per_input: dict[str, int] = field(default_factory=dict)
    """input directory → valid records read from it."""

    def duplicates_summary(self, directory: str) -> str | None:
        """One line's worth about the duplicates found in `directory` (records whose run
        id was already read from the output or an earlier input), or None."""
        found = [d for d in self.duplicates if d.found_in == directory]
        if not found:
            return None
        identical = sum(d.identical for d in found)
        different = len(found) - identical
        how = f"{identical} identical" + (f", {different} different: the first ok one kept" if different else "")
        return f"{len(found)} duplicate{'s' if len(found) != 1 else ''} of records already merged ({how})"


def _same_directory(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def merge_dirs(dirs: list[Path], out: Path) -> MergeResult:
    """Copy every valid record of `dirs` into `out` (records already there are kept)."""
    out = Path(out)
    for directory in dirs:
        if not Path(directory).is_dir():
            raise UserError(f"{directory}: no such result directory")
    inputs = [Path(d) for d in dirs if not _same_directory(Path(d), out)]
    sources = ([out] if any(folder.is_dir() for _, folder in kind_folders(out)) else []) + inputs
    collection = collect(sources)
    result = MergeResult(out=out, problems=collection.problems, duplicates=collection.duplicates)
    result.per_input = {str(d): collection.valid_per_dir.get(str(d), 0) for d in inputs}
    stores = {name: RecordStore(out / kind.folder) for name, kind in RUN_KINDS.items()}
    for item in collection.records:
        store = stores[item.record["kind"]]
        target = store.path_for(item.record["run_id"])
        if _same_directory(item.path, target) or _holds(target, item.record):
            result.unchanged += 1
            continue
        store.write(item.record)
        copy_predictions(item.record, item.path, out)
        result.written += 1
    return result


def copy_predictions(record: dict, record_path: Path, out: Path) -> None:
    """The saved predictions a record refers to, copied beside it (from the result
    directory its file lies in, or the folder itself for a bare folder of records)."""
    import shutil

    reference = (record.get("details") or {}).get("predictions")
    if not isinstance(reference, dict) or not isinstance(reference.get("path"), str):
        return
    target = out / reference["path"]
    if target.exists():
        return
    for directory in (record_path.parent.parent, record_path.parent):
        found = directory / reference["path"]
        if found.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, target)
            return


def _holds(path: Path, record: dict) -> bool:
    """True when `path` already holds exactly this record."""
    import json

    try:
        return canonical_json(json.loads(path.read_text(encoding="utf-8"))) == canonical_json(record)
    except (OSError, ValueError):
        return False
