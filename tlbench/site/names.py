"""File names on the site, made from ids that anybody may have written.

A record's ids (targets, sources, strategies, a suite's title) are free text: they may
hold ``../``, slashes, quotes, markup or characters a file system or a web host treats
specially. A name on the site is therefore never the id itself but a short readable
slug of it (lower-case ASCII letters, digits and dashes) followed by a hash of the whole
id, so two ids that slug alike still get two files, and nothing a record says can
choose where a file lands.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SLUG_CHARS = 40
"""The readable part of a name is cut to this length; the hash keeps it unique."""

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_RELEASE = re.compile(r"r(\d{4,})-[0-9a-f]{10}")


def digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def slug(text: str, key: str | None = None) -> str:
    """`text` as a safe file name: its ASCII letters and digits, dashed, then a hash of
    `key` (the text itself by default), e.g. ``digits-5-9-1a2b3c4d5e``."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii").lower()
    readable = _NOT_SLUG.sub("-", ascii_text).strip("-")[:SLUG_CHARS].strip("-")
    hashed = digest(str(text) if key is None else key)
    return f"{readable}-{hashed}" if readable else hashed


def release_id(number: int, content_hash: str) -> str:
    """A release's folder: numbered so that names sort by age, hashed by content."""
    return f"r{number:04d}-{content_hash[:10]}"


def release_number(name: str) -> int | None:
    """The number of a release folder's name (None for anything else)."""
    match = _RELEASE.fullmatch(name)
    return int(match.group(1)) if match else None
