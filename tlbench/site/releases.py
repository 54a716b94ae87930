"""Releases: immutable, numbered snapshots of one suite, and what changed between them.

Each `tlbench publish` of a suite makes a release, unless the suite's latest release
already holds exactly the same records. A release lives in its own folder
``<suite slug>/r0001-<content hash>/`` and is never written again; its ``release.json``
(the manifest) says what it holds: the digest of every record (by kind and run id), its
cells, the plugin versions its records name, the notes of what the report kept apart,
and what changed against the suite's previous release. The site's index and
``plugins.json`` are rebuilt from the manifests alone, so they never disagree with the
releases they describe.

A record *changed* when a run id is in both releases with different content (a rerun, a
record made portable); a cell is an entry on a target (`report.aggregate.cell_table`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..hashing import config_hash
from .names import release_number

MANIFEST = "release.json"
FORMAT = 1


def record_key(record: dict) -> str:
    """A record's key within a release: its kind and run id."""
    return f"{record.get('kind', 'run')}:{record['run_id']}"


def content_hash(digests: dict[str, str]) -> str:
    """The hash of a release's content: every record's key and digest."""
    return config_hash(sorted(digests.items()), 16)


def spec_plugins(spec: dict) -> list[tuple[str, str]]:
    """(plugin, version) of every plugin a record's spec names: its source, target,
    strategy or estimator, and each target of a group by role."""
    found = []
    parts = [part for key, part in sorted(spec.items()) if key != "identity"]
    targets = spec.get("targets")
    if isinstance(targets, dict):
        parts += [part for _, part in sorted(targets.items())]
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("plugin"), str) and part.get("version") is not None:
            found.append((part["plugin"], str(part["version"])))
    return found


def plugin_versions(records: list[dict]) -> dict[str, list[str]]:
    """plugin → the versions records name, sorted."""
    versions: dict[str, set[str]] = {}
    for record in records:
        for name, version in spec_plugins(record.get("spec") or {}):
            versions.setdefault(name, set()).add(version)
    return {name: sorted(found) for name, found in sorted(versions.items())}


def changes(previous: dict | None, current: dict) -> dict:
    """What `current` changes against the `previous` manifest of its suite (None: first)."""
    before = (previous or {}).get("records") or {}
    after = current["records"]
    cells_before, cells_after = (previous or {}).get("cells") or {}, current["cells"]
    plugins_before, plugins_after = (previous or {}).get("plugins") or {}, current["plugins"]
    return {
        "previous": (previous or {}).get("release"),
        "records_added": sorted(set(after) - set(before)),
        "records_removed": sorted(set(before) - set(after)),
        "records_changed": sorted(key for key in set(after) & set(before) if after[key] != before[key]),
        "cells_added": sorted(cells_after[key] for key in set(cells_after) - set(cells_before)),
        "cells_removed": sorted(cells_before[key] for key in set(cells_before) - set(cells_after)),
        "plugins_changed": {name: {"before": plugins_before.get(name, []), "after": plugins_after.get(name, [])}
                            for name in sorted(set(plugins_before) | set(plugins_after))
                            if plugins_before.get(name, []) != plugins_after.get(name, [])},
    }


def change_summary(change: dict) -> str:
    """One line: counts of what changed (the first release: what it holds)."""
    if change.get("previous") is None:
        return f"first release: {len(change['records_added'])} records, {len(change['cells_added'])} cells"
    parts = [f"records +{len(change['records_added'])} −{len(change['records_removed'])} "
             f"~{len(change['records_changed'])}",
             f"cells +{len(change['cells_added'])} −{len(change['cells_removed'])}"]
    if change["plugins_changed"]:
        parts.append("plugin versions: " + "; ".join(
            f"{name} {', '.join(c['before']) or 'none'} → {', '.join(c['after']) or 'none'}"
            for name, c in change["plugins_changed"].items()))
    return " · ".join(parts)


def read_manifest(folder: Path) -> dict | None:
    """A release folder's manifest, or None when it is not a readable release."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("release") != folder.name:
        return None
    needed = {"records": dict, "cells": dict, "plugins": dict, "suite": str, "changes": dict}
    if any(not isinstance(manifest.get(key), kind) for key, kind in needed.items()):
        return None
    return manifest


def suite_releases(suite_dir: Path) -> list[dict]:
    """The readable releases of one suite's folder, oldest first."""
    if not suite_dir.is_dir():
        return []
    found = []
    for folder in suite_dir.iterdir():
        number = release_number(folder.name)
        if number is not None and folder.is_dir():
            manifest = read_manifest(folder)
            if manifest is not None:
                found.append((number, manifest))
    return [manifest for _, manifest in sorted(found, key=lambda item: item[0])]


def site_suites(site: Path) -> dict[str, list[dict]]:
    """suite slug → its releases (oldest first), for every suite folder of the site."""
    suites = {}
    for folder in sorted(site.iterdir()) if site.is_dir() else []:
        if folder.is_dir() and not folder.name.startswith("."):
            releases = suite_releases(folder)
            if releases:
                suites[folder.name] = releases
    return suites
