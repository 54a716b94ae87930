"""What a reader downloads: the release's records and tables in one bundle.

A release's records are published as ``records.jsonl`` (one record per line, in a fixed
order), next to the report's ``results.parquet`` and ``summary.json``, and the three are
zipped into ``bundle.zip``. The zip's entries carry a fixed timestamp and fixed
permissions and come in a fixed order, so zipping the same files twice gives the same
bytes: a reader can compare a download against its published hash, and a rebuild of a
release changes nothing it need not change.

Records go through `tlbench.results.paths.portable` before they are published: a path
under the user's home or the tlbench cache becomes ``~/...`` or cache-relative, so a
release never publishes a user's file system.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from ..hashing import canonical_json, config_hash

RECORDS = "records.jsonl"
BUNDLE = "bundle.zip"
BUNDLED = (RECORDS, "results.parquet", "summary.json")
"""The files the bundle holds, in its order (the report writes the last two)."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry: the same for every build."""


def portable_records(records: list[dict]) -> list[dict]:
    """The records as they are published: paths under home or a cache named by their root
    (one pass over all of them: the roots are worked out once)."""
    from ..results.paths import portable

    return portable(list(records))


def identity_moved(record: dict) -> bool:
    """Whether making the record portable changed its identity, so that its run id (the
    hash of that identity) no longer matches: a parameter naming a file under home."""
    identity = (record.get("spec") or {}).get("identity")
    return isinstance(identity, dict) and config_hash(identity, len(record["run_id"])) != record["run_id"]


def record_line(record: dict) -> str:
    """A record as one line of JSON (sorted keys, ASCII): the text its digest is taken of."""
    return canonical_json(record)


def record_digest(line: str) -> str:
    """The digest of a record's published content (its line in records.jsonl)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:16]


def records_jsonl(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip of `files` (name → content) whose bytes depend on nothing else."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever system builds it
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def bundle_zip(release: Path) -> bytes:
    """The bundle of a release folder's `BUNDLED` files (those present)."""
    return zip_bytes({name: (release / name).read_bytes() for name in BUNDLED if (release / name).is_file()})
