"""`tlbench validate DIR... [--against SITE]`: is a submission fit to publish?

A contributor runs it on their result directories before sending them. It prints one
line per problem, ``<file or directory>: <what is wrong>``, and exits 1 when there is
any (2 for input it cannot use: a missing directory, a site without plugins.json). The
checks, on every record of every directory given:

1. **Schema**: the checks every reader applies (`records.validate_record`: the schema,
   plausible metrics, an identity that hashes to the run id; the file named after it).
2. **Tampering**: the integrity digest (`records.integrity_problem`) matches the
   record; a record without one (tlbench 0.1 wrote none) is a problem too, since an
   edit to it cannot be seen. The digest proves no authorship (anyone can compute
   it), so numbers that can be derived again are derived again: the overfitting gap
   from the record's own train and test headline, the negative-transfer score (and
   ``nt_vs_<plugin>``) from the paired baseline's (or run's) own record when the
   submission holds it, to a relative tolerance of 1e-9.
3. **Provenance** of every ok record: the fields tlbench writes (`tlbench.provenance`:
   the versions of tlbench, Python and `provenance.LIBRARIES`, device, device name,
   host, platform, git revision; and the worker's determinism, threads and budgets),
   and each target's content hash and data revision (which may be null: not every
   target has one). Library versions, the git revision and the budgets may be null;
   their keys must be there.
4. **Selection**: no selection (``details.selection``, and any ``selection`` a
   strategy recorded in its details) read test labels (a read ``<role>:test:labels``,
   a rule or metric named after the test split), and no labels of a test split were
   revealed. A run on a group of targets that selected on labels its scored role
   withholds must say they were given to it (``details.revealed``): it is then shown
   as an upper bound, never ranked with the rest.
5. **Data groups**: records that claim the same target and seed but saw different data
   (`tlbench.report.conflicts`), one line per target and seed.
6. **Absolute paths** left in a record (`paths.absolute_paths`), one line per place.
   **Saved predictions** a record refers to (`predictions`) are in the directory, with
   the bytes whose SHA-256 it names.
7. With ``--against SITE``: ``SITE/plugins.json`` (written by `tlbench publish`) lists
   ``{"<plugin>": ["<version>", ...]}``, every plugin version the site's records name.
   A plugin the site knows at a version it does not have is told in a ``note:`` line:
   the site shows such results apart and never averages them, so it is not an error.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..provenance import LIBRARIES
from .predictions import problem as predictions_problem
from .collect import kind_folders, read_record, record_files
from .kinds import run_kind
from .paths import absolute_paths
from .records import integrity_problem, task_of
from .scores import compared_with, negative_transfer

PROVENANCE_FIELDS = ("device", "device_name", "host", "platform")
"""Provenance every ok record names (non-empty)."""
PROVENANCE_KEYS = ("git_revision", "deterministic", "threads", "time_budget_s", "memory_budget_mb")
"""Provenance keys every ok record has (their value may be null)."""
REL_TOL = 1e-9

_UNSEALED = ("no integrity digest (tlbench 0.1 wrote none), so an edit to it cannot be seen; run it again, or "
             "write it again with `tlbench merge DIR --out NEW`, which checks it first")


@dataclass(frozen=True)
class Finding:
    where: str
    message: str
    note: bool = False
    """A note is worth knowing but is no problem (exit 0)."""

    def __str__(self) -> str:
        return f"{'note: ' if self.note else ''}{self.where}: {self.message}"


@dataclass
class Validation:
    findings: list[Finding] = field(default_factory=list)
    n_records: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.note]


@dataclass
class _Loaded:
    record: dict
    path: Path
    directory: Path
    edited: bool = False
    """Its digest does not match: it was edited, and its numbers vouch for nothing."""


# ---------------------------------------------------------------------- the command


def cmd_validate(args) -> int:
    site = read_site_plugins(Path(args.against)) if args.against else None
    result = validate_dirs([Path(d) for d in args.dirs], site)
    for finding in result.findings:
        print(finding)
    problems, notes = len(result.problems), len(result.findings) - len(result.problems)
    print(f"tlbench validate: {result.n_records} records; "
          + (f"{problems} problem{'s' if problems != 1 else ''}" if problems else "no problems")
          + (f", {notes} note{'s' if notes != 1 else ''}" if notes else ""), file=sys.stderr)
    return 1 if problems else 0


def read_site_plugins(site: Path) -> dict[str, list[str]]:
    """The plugin versions a published site already has (its ``plugins.json``)."""
    if not site.is_dir():
        raise UserError(f"{site}: no such site directory; expected one built by `tlbench publish`")
    path = site / "plugins.json"
    try:
        plugins = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; expected a site built by `tlbench publish`") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({str(exc)[:200]})") from None
    if not isinstance(plugins, dict) or not all(
            isinstance(versions, list) and all(isinstance(v, str) for v in versions) for versions in plugins.values()):
        raise UserError(f"{path}: expected {{\"<plugin>\": [\"<version>\", ...]}}")
    return plugins


def validate_dirs(dirs: list[Path], site_plugins: dict[str, list[str]] | None = None) -> Validation:
    """Every finding about the records of `dirs` (see the module's list)."""
    result = Validation()
    loaded: list[_Loaded] = []
    for directory in dirs:
        loaded += _read_directory(directory, result)
    result.n_records = len(loaded)
    for item in loaded:
        _check_record(item, result)
    by_id: dict[str, _Loaded] = {}
    for item in loaded:
        if item.record["run_id"] not in by_id or by_id[item.record["run_id"]].record["status"] != "ok":
            by_id[item.record["run_id"]] = item
    for item in loaded:
        _check_derived(item, by_id, result)
    _check_conflicts(dirs, [item.record for item in by_id.values() if item.record["kind"] == "run"], result)
    if site_plugins is not None:
        _check_plugins(loaded, site_plugins, result)
    result.findings.sort(key=lambda finding: (finding.note, finding.where))  # file by file; notes last
    return result


def _read_directory(directory: Path, result: Validation) -> list[_Loaded]:
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory; expected a result directory" if directory.exists()
                        else f"{directory}: no such result directory")
    folders = kind_folders(directory)
    if not any(record_files(directory, folder) for _, folder in folders):
        raise UserError(f"{directory}: no records in it; expected a result directory (runs/, estimates/) "
                        f"or a folder of run records")
    loaded = []
    for kind, folder in folders:
        for path in record_files(directory, folder):
            record, why = read_record(path, kind)
            if record is None:
                result.findings.append(Finding(str(path), why))
            else:
                loaded.append(_Loaded(record, path, directory))
    return loaded


# ---------------------------------------------------------------------- one record


def _check_record(item: _Loaded, result: Validation) -> None:
    record, where = item.record, str(item.path)
    found = []
    seal = integrity_problem(record)
    if seal is not None:
        item.edited = seal != "no integrity digest"
        found.append(seal if item.edited else _UNSEALED)
    if record["status"] == "ok":
        missing = _missing_provenance(record)
        if missing:
            found.append(f"provenance incomplete: missing {', '.join(missing)}")
    found += selection_problems(record)
    found += _path_problems(record)
    saved = predictions_problem(record, item.directory)
    if saved is not None:
        found.append(saved)
    result.findings += [Finding(where, message) for message in found]


def _missing_provenance(record: dict) -> list[str]:
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    missing = [f"provenance.{key}" for key in PROVENANCE_FIELDS if not _text(prov.get(key))]
    missing += [f"provenance.{key}" for key in PROVENANCE_KEYS if key not in prov]
    versions = prov.get("versions")
    if not isinstance(versions, dict):
        missing.append("provenance.versions")
    else:
        missing += [f"provenance.versions.{name}" for name in ("tlbench", "python") if not _text(versions.get(name))]
        missing += [f"provenance.versions.{name}" for name in LIBRARIES if name not in versions]
    spec, details = record["spec"], _dict(record.get("details"))
    targets = _dict(spec.get("targets")) or {"": spec["target"]}
    for role, entry in targets.items():
        if not _text(_dict(entry).get("content_hash")):
            missing.append(f"spec.targets.{role}.content_hash" if role else "spec.target.content_hash")
    described = {f"details.targets.{role}": _dict(entry) for role, entry in _dict(details.get("targets")).items()} \
        if run_kind(record["kind"]).multitask else {"details.target": _dict(details.get("target"))}
    for where, target in described.items():
        if not _text(target.get("content_hash")):
            missing.append(f"{where}.content_hash")
        if "revision" not in target:
            missing.append(f"{where}.revision")
    return missing


def selection_problems(record: dict) -> list[str]:
    """Why a record's selection cannot be trusted: it read test labels, or labels its scored
    role withholds without saying so (an upper bound not marked as one)."""
    details, spec = _dict(record.get("details")), record["spec"]
    revealed = [item for item in details.get("revealed") or [] if isinstance(item, str)] \
        if isinstance(details.get("revealed"), list) else []
    test_reads, withheld = [], []
    for selection in _selections(details):
        rule, metric = selection.get("rule"), selection.get("metric")
        if isinstance(rule, str) and rule.strip().lower() == "test":
            test_reads.append(f"rule {rule!r}")
        if isinstance(metric, str) and metric.lower().startswith("test"):
            test_reads.append(f"metric {metric!r}")
        reads = selection.get("reads") if isinstance(selection.get("reads"), list) else []
        for read in (r for r in reads if isinstance(r, str)):
            parts = [part.strip().lower() for part in read.split(":")]
            role, split, what = (parts + ["", ""])[:3]
            if len(parts) >= 2 and parts[-1] == "labels" and parts[-2] == "test":  # role:test:labels, test:labels
                test_reads.append(read)
            elif (what == "labels" and isinstance(spec.get("targets"), dict) and role == spec.get("scored")
                  and not run_kind(record.get("kind", "run")).multitask  # every member of a task group is labelled
                  and f"{role}:{split}" not in revealed):
                withheld.append(read)
    test_reads += [f"revealed {item}" for item in revealed if item.split(":")[1:2] == ["test"]]
    problems = []
    if test_reads:
        problems.append(f"selection read test labels ({', '.join(dict.fromkeys(test_reads))})")
    if withheld:
        problems.append(f"selection read labels the scored role withholds ({', '.join(dict.fromkeys(withheld))}) "
                        f"but details.revealed does not say they were given: an upper bound not marked as one")
    return problems


def _selections(details: dict) -> list[dict]:
    """``details.selection`` and every ``selection`` object inside the strategy's details."""
    found = [details["selection"]] if isinstance(details.get("selection"), dict) else []
    stack = [details.get("strategy")]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("selection"), dict):
                found.append(value["selection"])
            stack += [v for k, v in value.items() if k != "selection"]
        elif isinstance(value, list):
            stack += value
    return found


def _path_problems(record: dict) -> list[str]:
    places: dict[str, list[str]] = {}
    for location, path in absolute_paths(record):
        places.setdefault(location, []).append(path)
    return [f"absolute path at {location}: {paths[0]}" + (f" (+{len(paths) - 1} more there)" if len(paths) > 1 else "")
            for location, paths in places.items()]


# ---------------------------------------------------------------------- derived numbers


def _check_derived(item: _Loaded, by_id: dict[str, _Loaded], result: Validation) -> None:
    """Numbers a record holds that its own metrics, or the records it was paired with,
    give again; not for records whose digest shows an edit (that is told already)."""
    record = item.record
    if item.edited or record["status"] != "ok":
        return
    if run_kind(record["kind"]).multitask:
        _check_member_comparisons(item, by_id, result)
        return
    if record["kind"] != "run":
        return
    metrics, task = record["metrics"], task_of(record)
    head = next(spec for spec in task["metrics"] if spec["name"] == task["headline"])
    found = []
    train, test = metrics.get(f"train_{task['headline']}"), metrics.get(f"test_{task['headline']}")
    if _number(train) and _number(test) and _number(metrics.get("overfitting_gap")):
        gap = (train - test) if head["higher_is_better"] else (test - train)
        if not _close(metrics["overfitting_gap"], gap):
            found.append(f"metrics.overfitting_gap is {metrics['overfitting_gap']!r}, but its own train and test "
                         f"{task['headline']} give {gap!r}")
    spec = record["spec"]
    expected: dict[str, tuple[float, str]] = {}
    baseline = _paired_ok(by_id, spec.get("baseline_run_id"))
    if baseline is not None:
        expected |= {key: (value, baseline["run_id"]) for key, value in negative_transfer(record, baseline).items()}
    paired = _dict(spec.get("paired"))
    others = {plugin: other for plugin, run_id in paired.items()
              if (other := _paired_ok(by_id, run_id)) is not None}
    expected |= {key: (value, str(paired[key.removeprefix("nt_vs_")]))
                 for key, value in compared_with(record, others).items()}
    for key, (value, other_id) in expected.items():
        stated = metrics.get(key)
        if _number(stated) and _number(value) and not _close(stated, value):
            found.append(f"metrics.{key} is {stated!r}, but this record and {other_id}'s give {value!r}")
    result.findings += [Finding(str(item.path), message) for message in found]


def _paired_ok(by_id: dict[str, _Loaded], run_id) -> dict | None:
    item = by_id.get(run_id) if isinstance(run_id, str) else None
    if item is None or item.edited or item.record["status"] != "ok":
        return None
    return item.record


def _check_member_comparisons(item: _Loaded, by_id: dict[str, _Loaded], result: Validation) -> None:
    """A multi-task record's Δ per task, Δm and tasks hurt, derived again from the records
    of its members' single-task and from-scratch runs, where every one of them is here."""
    from .multitask import compare_with_single_task

    record = item.record
    members = [_dict(m) for m in record["spec"].get("members") or []]
    stl = {m.get("role"): _paired_ok(by_id, m.get("single_task_run_id")) for m in members}
    scratch = {m.get("role"): _paired_ok(by_id, m.get("baseline_run_id")) for m in members}
    if not members or any(other is None for other in stl.values()):
        return
    expected, _ = compare_with_single_task(record["tasks"], record["metrics"],
                                           {role: other["metrics"] for role, other in stl.items()},
                                           {role: other["metrics"] for role, other in scratch.items() if other})
    found = []
    for key, value in expected.items():
        stated = record["metrics"].get(key)
        if _number(stated) and _number(value) and not _close(stated, value):
            found.append(f"metrics.{key} is {stated!r}, but this record and its members' single-task runs give "
                         f"{value!r}")
    result.findings += [Finding(str(item.path), message) for message in found]


# ---------------------------------------------------------------------- across records


def _report_function(name: str):
    """A function of the report layer, which sits above this one: reached by name where
    it is used, as run kinds reach their report rows (`kinds.RunKind.resolve`)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _check_conflicts(dirs: list[Path], records: list[dict], result: Validation) -> None:
    if not records:
        return
    frame = run_kind("run").resolve("rows")(records)
    where = ", ".join(str(d) for d in dirs)
    for conflict in _report_function("tlbench.report.conflicts:find_conflicts")(frame):
        result.findings.append(Finding(where, str(conflict)))


def _check_plugins(loaded: list[_Loaded], site: dict[str, list[str]], result: Validation) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for item in loaded:
        spec = item.record["spec"]
        parts = [spec.get(name) for name in ("source", "target", run_kind(item.record["kind"]).recipe)]
        parts += list(_dict(spec.get("targets")).values())
        for part in map(_dict, parts):
            plugin, version = part.get("plugin"), part.get("version")
            if isinstance(plugin, str) and isinstance(version, str):
                seen.setdefault((plugin, version), item.directory)
    for (plugin, version), directory in sorted(seen.items()):
        if plugin in site and version not in site[plugin]:
            result.findings.append(Finding(
                str(directory), f"plugin {plugin} version {version}: the site has {', '.join(site[plugin]) or 'none'}; "
                                f"its results will be shown apart, not averaged", note=True))


# ---------------------------------------------------------------------- helpers


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
