"""A run's full provenance as a reader checks it on a cell page.

A published number is only as good as what stands behind it: which plugins at which
versions, which data (the target's content hash and revision), which weights, which
hyper-parameters the strategy actually used (``details.strategy.resolved``: the values
after defaults and schedules were applied, not only what the suite asked for), the seed,
the machine and the library versions. This module turns one published record into that
list; everything in it is read from the record as data and shown as escaped text.
"""

from __future__ import annotations

import json

from .page import esc, facts

MAX_TEXT = 2000
"""A value shown longer than this is cut (the record in the bundle keeps all of it)."""


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _json(value) -> str:
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"


def data_revision(record: dict) -> str | None:
    """The revision of the target's data the record names (a hub revision, a file's hash)."""
    details = _dict(record.get("details"))
    revision = _dict(details.get("target")).get("revision")
    if revision is None:
        roles = _dict(details.get("targets"))
        found = sorted({str(_dict(part).get("revision")) for part in roles.values() if _dict(part).get("revision")})
        revision = ", ".join(found) or None
    return None if revision is None else str(revision)


def resolved(record: dict) -> dict:
    """The strategy's hyper-parameters as it resolved them (empty when not recorded)."""
    return _dict(_dict(_dict(record.get("details")).get("strategy")).get("resolved"))


def _plugin_facts(role: str, part: dict) -> list[tuple[str, object]]:
    rows = [(f"{role}", f"{part.get('id', '')} ({part.get('plugin', '?')} v{part.get('version', '?')})")]
    for key in ("content_hash", "fingerprint"):
        if part.get(key):
            rows.append((f"{role} {key.replace('_', ' ')}", part[key]))
    return rows


def provenance_facts(record: dict) -> list[tuple[str, object]]:
    """(label, value) pairs: the run, its plugins and data, its machine and libraries."""
    spec, prov = _dict(record.get("spec")), _dict(record.get("provenance"))
    rows: list[tuple[str, object]] = [("run id", record.get("run_id")), ("status", record.get("status")),
                                      ("seed", spec.get("seed")), ("init", spec.get("init")),
                                      ("started", record.get("started_at")), ("finished", record.get("finished_at")),
                                      ("attempt", record.get("attempt"))]
    for role in ("source", "target", "strategy", "estimator"):
        if isinstance(spec.get(role), dict):
            rows += _plugin_facts(role, spec[role])
    for role, part in sorted(_dict(spec.get("targets")).items()):
        rows += _plugin_facts(f"target ({role})", _dict(part))
    rows.append(("data revision", data_revision(record) or "not recorded"))
    task = _dict(record.get("task"))
    if task:
        rows.append(("task", f"{task.get('name', '?')} v{task.get('version', '?')} (headline {task.get('headline')})"))
    rows += [("host", prov.get("host")), ("platform", prov.get("platform")),
             ("device", f"{prov.get('device') or '?'} ({prov.get('device_name') or '?'})"),
             ("git revision", prov.get("git_revision") or "unknown"),
             ("deterministic", prov.get("deterministic")), ("threads", prov.get("threads"))]
    rows += [(f"{name} version", version) for name, version in sorted(_dict(prov.get("versions")).items())]
    error = _dict(record.get("error"))
    if error:
        rows.append(("error", f"{error.get('type', '')}: {str(error.get('message', ''))[:MAX_TEXT]}"))
    return [(label, value) for label, value in rows if value is not None]


def _block(title: str, value) -> str:
    return f"<h4>{esc(title)}</h4><pre>{esc(_json(value))}</pre>"


def provenance_html(record: dict, anchor: str) -> str:
    """A collapsible block for one run: its facts, then its parameters and metrics as JSON."""
    spec = _dict(record.get("spec"))
    summary = f"run {record.get('run_id')} · seed {spec.get('seed')} · {record.get('status')}"
    parts = [f'<details id="{esc(anchor)}"><summary>{esc(summary)}</summary>', facts(provenance_facts(record)),
             _block("resolved hyper-parameters (details.strategy.resolved)", resolved(record) or "not recorded")]
    for role in ("source", "target", "strategy", "estimator"):
        if isinstance(spec.get(role), dict):
            parts.append(_block(f"{role} parameters", _dict(spec[role]).get("params") or {}))
    parts.append(_block("metrics", _dict(record.get("metrics"))))
    parts.append("</details>")
    return "".join(parts)
