"""`tlbench publish DIR... --out SITE`: add a release of one suite to a static site.

The records of the given result directories are read as every report reads them
(validated, one per id), made portable (`bundle.portable_records`), and compared with the
suite's latest release: the same records make no new release. Otherwise the release is
built whole in a hidden folder inside the suite's folder — the report
(`report.build_report` on the portable records), the bundle, the front page, a page per
cell, the changes, and the manifest last — and renamed into place in one step, so a
publish that fails or is killed leaves the site as it was. The shared files (index,
latest pages, plugins.json) are then rebuilt from the manifests.

A directory holding records that do not validate is refused rather than published
without them: a published leaderboard must not silently drop runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError
from ..outputs import check_directory, check_not_inside
from ..wording import count
from . import bundle, cells, index, names, release_page, releases

TITLE_CHARS = 200
LEADERBOARD = "leaderboard.html"
LOCK = ".publish.lock"


@dataclass
class Published:
    site: Path
    suite: str
    release: str
    new: bool
    records: int
    manifest: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.site / names.slug(self.suite) / self.release

    def message(self) -> str:
        where = self.folder / release_page.FRONT
        if not self.new:
            return (f"nothing new to publish: {self.suite!r} release {self.release} already holds these "
                    f"{count(self.records, 'record')}; no release made ({where})")
        return (f"published {self.suite!r} release {self.release}: {count(self.records, 'record')}, "
                f"{count(len(self.manifest['cells']), 'cell')}; "
                f"{releases.change_summary(self.manifest['changes'])} ({where})")


def cmd_publish(args) -> int:
    import sys

    published = publish_site([Path(d) for d in args.dirs], Path(args.out), args.title)
    for warning in published.warnings:
        print(f"tlbench: warning: {warning}", file=sys.stderr)
    print(published.message())
    return 0


def _leftover_paths(records: list[dict]) -> list[str]:
    """A warning when published records still name absolute paths (outside the home and
    the caches, which `portable` rewrote): the site shows them as they are."""
    from ..results.paths import absolute_paths

    found = [(record["run_id"], location, path) for record in records
             for location, path in absolute_paths(record)[:1]]
    if not found:
        return []
    run_id, location, path = found[0]
    return [f"publish: {count(len(found), 'record')} name an absolute path outside the home and the caches, "
            f"published as it is (e.g. run {run_id}, {location}: {path}); `tlbench validate` lists them"]


def suite_title(dirs: list[Path], title: str | None) -> str:
    """--title, else the title the directories' reports share, else their names."""
    from ..report import previous_title

    if title is not None:
        if not title.strip():
            raise UserError("publish: --title: expected a suite title, got an empty string")
        return title.strip()[:TITLE_CHARS]
    found = sorted({t for t in (previous_title(d) for d in dirs) if t})
    if len(found) > 1:
        raise UserError(f"publish: the directories' reports name different suites ({', '.join(map(repr, found))}); "
                        f"choose one with --title")
    return found[0] if found else ", ".join(d.resolve().name for d in dirs)[:TITLE_CHARS]


def _check_inputs(dirs: list[Path], out: Path) -> Path:
    for directory in dirs:
        if not directory.expanduser().is_dir():
            raise UserError(f"publish: {str(directory)!r}: no such result directory")
    site = check_directory(out, "--out")
    check_not_inside(site, dirs, "--out")
    return site


def _records(dirs: list[Path]) -> list[dict]:
    from ..results.collect import collect

    collection = collect([d.expanduser() for d in dirs])
    if collection.problems:
        first = collection.problems[0]
        raise UserError(f"publish: {count(len(collection.problems), 'record file')} cannot be used, "
                        f"the first: {first}; fix or remove them before publishing")
    records = [item.record for item in collection.records]
    _refuse_unpublishable(records)
    if not any(record.get("kind") == "run" for record in records):
        raise UserError(f"publish: no run records in {', '.join(repr(str(d)) for d in dirs)} "
                        "(expected runs/ with records)")
    return records


@contextmanager
def _only_publish(site: Path):
    """Hold the site's lock while a release is numbered, built and indexed: a second
    publish to the same site at the same time would take the same release number."""
    site.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; publishes must not overlap
        yield
        return
    with open(site / LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"publish: {str(site)!r}: another `tlbench publish` is writing to this site; run this "
                            "one again when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refuse_unpublishable(records: list[dict]) -> None:
    """A leaderboard is not published from a record edited after it was written (its
    integrity digest no longer matches) or from one whose selection read test labels:
    `tlbench validate` names every such record."""
    from ..results.records import integrity_problem
    from ..results.validate import selection_problems

    for record in records:
        problem = integrity_problem(record)
        if problem is not None and record.get("integrity") is not None:
            raise UserError(f"publish: run {record.get('run_id')}: {problem}; `tlbench validate` lists every "
                            "problem")
        selection = selection_problems(record)
        if selection:
            raise UserError(f"publish: run {record.get('run_id')}: {selection[0]}; such a run cannot be "
                            "published")


def publish_site(dirs: list[Path], out: Path, title: str | None = None) -> Published:
    site = _check_inputs(dirs, out)
    records = _records(dirs)
    title = suite_title(dirs, title)
    with _only_publish(site):
        published = _publish(site, records, title)
    if published.new:
        published.warnings = _unsealed(records) + _leftover_paths(bundle.portable_records(records))
    return published


def _unsealed(records: list[dict]) -> list[str]:
    """A warning when records carry no integrity digest: an edit to them cannot be seen."""
    found = [record for record in records if record.get("integrity") is None]
    if not found:
        return []
    return [f"publish: {count(len(found), 'record')} carry no integrity digest (written before records were "
            f"sealed, e.g. run {found[0].get('run_id')}): an edit to them cannot be seen; `tlbench validate` lists "
            "them"]


def _publish(site: Path, records: list[dict], title: str) -> Published:
    published = sorted(bundle.portable_records(records), key=releases.record_key)
    moved = [record for record in published if bundle.identity_moved(record)]
    if moved:
        raise UserError(f"publish: {count(len(moved), 'record')} name a path under the home or a cache directory in "
                        f"their identity (e.g. run {moved[0]['run_id']}: a source's or target's file parameter); "
                        "published, it would show that path, made portable, its run id would no longer match")
    lines = [bundle.record_line(record) for record in published]
    digests = {releases.record_key(r): bundle.record_digest(line) for r, line in zip(published, lines)}
    content = releases.content_hash(digests)
    suite_dir = site / names.slug(title)
    history = releases.suite_releases(suite_dir)
    if history and history[-1].get("content_hash") == content:
        index.write_shared(site)
        return Published(site, title, history[-1]["release"], False, len(published), history[-1])
    taken = [names.release_number(p.name) for p in suite_dir.iterdir()] if suite_dir.is_dir() else []
    release = names.release_id(max([n for n in taken if n is not None], default=0) + 1, content)
    manifest = {"format": releases.FORMAT, "suite": title, "suite_slug": suite_dir.name, "release": release,
                "content_hash": content, "published_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                "tlbench": _version(), "records": digests, "plugins": releases.plugin_versions(published)}
    suite_dir.mkdir(parents=True, exist_ok=True)
    for stale in suite_dir.glob(".building-*"):  # left by a publish that was killed (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    build = Path(tempfile.mkdtemp(prefix=".building-", dir=suite_dir))
    try:
        folder = build / release
        _build_release(folder, build / "records", published, lines, manifest, history[-1] if history else None)
        _readable(folder)
        os.rename(folder, suite_dir / release)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    index.write_shared(site)
    return Published(site, title, release, True, len(published), manifest)


def _version() -> str:
    import tlbench

    return tlbench.__version__


def _stage(staging: Path, records: list[dict]) -> Path:
    """The published records as a result directory the report reads."""
    from ..results.kinds import RUN_KINDS

    for record in records:
        folder = staging / RUN_KINDS[record.get("kind", "run")].folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{record['run_id']}.json").write_text(json.dumps(record), encoding="utf-8")
    return staging


def _build_release(folder: Path, staging: Path, records: list[dict], lines: list[str], manifest: dict,
                   previous: dict | None) -> None:
    import pandas as pd

    from ..report import build_report

    report = build_report([_stage(staging, records)], out=folder, title=manifest["suite"])
    if report.problems:  # the records validated as given: only making them portable can have broken them
        raise UserError(f"publish: {count(len(report.problems), 'record')} no longer validate once made portable, "
                        f"the first: {report.problems[0].message}")
    (folder / bundle.RECORDS).write_bytes(bundle.records_jsonl(lines))
    zipped = bundle.bundle_zip(folder)
    (folder / bundle.BUNDLE).write_bytes(zipped)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(folder / "results.parquet", columns=["run_id", "target_key", "entry", "headline_test"])
    found = cells.release_cells(summary.get("cells") or [], frame)
    manifest["cells"] = {cell.key: cell.label for cell in found}
    manifest["kept_apart"] = list(report.kept_apart)
    manifest["changes"] = releases.changes(previous, manifest)
    by_id = {record["run_id"]: record for record in records if record.get("kind", "run") == "run"}
    headlines = dict(zip(frame["run_id"], frame["headline_test"]))
    pages = release_page.front_pages(manifest, summary.get("meta") or {}, found, hashlib.sha256(zipped).hexdigest())
    pages += release_page.change_pages(manifest)
    for cell in found:
        pages += cells.cell_pages(cell, by_id, headlines, manifest["suite"], manifest["release"])
    (folder / cells.CELL_FOLDER).mkdir(exist_ok=True)
    for name, data in pages:
        (folder / name).write_bytes(data)
    _wrap_leaderboard(folder / LEADERBOARD, manifest)
    text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
    (folder / releases.MANIFEST).write_text(text, encoding="utf-8")


def _wrap_leaderboard(path: Path, manifest: dict) -> None:
    """The report's leaderboard with the site's navigation on top (nothing else changes)."""
    from .page import nav

    html = path.read_text(encoding="utf-8")
    bar = nav([("../../index.html", "all suites"), (release_page.FRONT, f"release {manifest['release']}"),
               ("../latest/index.html", "latest release")])
    if "<body>" in html:
        path.write_text(html.replace("<body>", "<body>" + bar, 1), encoding="utf-8")


def _readable(folder: Path) -> None:
    """Folders as readable as the user's umask allows (a temporary folder starts private)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        os.chmod(path, 0o777 & ~mask)
