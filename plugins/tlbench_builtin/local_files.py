"""Identities of local files and folders, for fingerprints and data set revisions.

A weights file or a model folder is identified by the sha256 of its contents; a data
folder, which may hold many thousands of images, by a digest of its listing (relative
paths and sizes), since each run's content hash already covers the bytes it used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tlbench.hashing import file_sha256


def folder_digest(folder: Path, skip_suffixes: tuple[str, ...] = ()) -> str:
    """sha256 over a folder's top-level files: names and contents (without the files
    ending in `skip_suffixes`: a model folder's config and tokenizer without its weights)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.endswith(skip_suffixes)):
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def listing_digest(root: Path, files: list[Path] | None = None) -> str:
    """sha256 over the relative paths and sizes of `files` (default: every file under `root`)."""
    root = Path(root)
    if files is None:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def path_revision(path: Path) -> str:
    """'sha256:…' of a file's contents, or 'listing-sha256:…' of a directory."""
    path = Path(path)
    if path.is_file():
        return "sha256:" + file_sha256(path)
    return "listing-sha256:" + listing_digest(path)
