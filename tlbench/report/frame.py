"""Run records to a long pandas table: one row per run, parameters as ``p_*`` columns.

This table is ``results.csv`` and ``results.parquet``; every leaderboard number is
computed from it. Besides the record's own fields it carries the keys that decide which
runs may share a leaderboard cell:

- ``entry``: hash of the source and strategy identity (plugins, versions, parameters,
  weights fingerprint, initialisation). Runs that differ in any of these are different
  entries, shown side by side, never averaged together.
- ``target_key``: hash of the target identity (plugin, version, parameters), plus the
  data group when records disagree about the target's data (see `conflicts`).
- ``target_label`` and ``variant_note``: the names a reader sees; a note is added only
  where two entries or targets would otherwise look the same.

Every run row carries its task: the task type (``task``), the name of its headline
metric (``metric``) with its direction and range, every metric under its own name
(``test_accuracy``, ``test_r2``, ``train_mae``...), and the headline again under generic
names (``headline_test``, ``headline_train``, ``headline_val``), which is what the
leaderboard's statistics read. Records of tlbench 0.1 are classification with accuracy.

The negative-transfer score is recomputed from the paired baseline's record whenever
that record is present, so a run that finished before its baseline still gets one; it
is signed by the headline's direction, so NT < 0 always means worse than the baseline.
So is each comparison a run records with the runs it is paired with (``spec.paired``,
plugin → run id: a domain-adaptation run and the ERM run of its source, group and seed):
``nt_vs_<plugin>``, one column per plugin, from the paired record when it is present.

Runs on a group of targets (several roles, one scored) also carry what their records
say about them, as data (the report names no plugin, role or rule): the scored role and
its target, how the checkpoint was chosen (``selection_rule``), the labels the run was
given that its roles withhold (``revealed``: such a run is an ``upper_bound``), the
strategy's method ``family``, and the domain gap: the headline on the test split of the
one other role scored with the same task (``other_role``, ``other_headline_test``)
against the scored one, ``domain_gap`` = other − scored where higher is better (scored −
other where lower is), so a positive gap is always worse on the scored domain.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from ..hashing import canonical_json, config_hash
from ..wording import baseline_label
from ..results.records import RUN_METRICS, headline_spec, task_metric_keys, task_of
from .conflicts import Conflict, data_groups, find_conflicts

KEY_COLUMNS = ["run_id", "status", "target", "source", "strategy", "seed", "baseline",
               "target_label", "variant_note", "entry", "target_key", "target_identity", "data_group",
               "variant", "source_identity", "source_plugin", "source_version", "strategy_plugin", "strategy_version",
               "target_plugin", "target_version", "init", "content_hash", "source_fingerprint",
               "baseline_run_id"]
PROVENANCE_COLUMNS = ["tlbench_version", "python_version", "torch_version", "timm_version",
                      "transformers_version", "peft_version", "numpy_version", "device", "device_name",
                      "host", "platform", "git_revision", "deterministic", "threads", "started_at",
                      "finished_at", "attempt", "error_type", "error_message"]
LIBRARIES = ("tlbench", "python", "torch", "timm", "transformers", "peft", "numpy")
TASK_COLUMNS = ["task", "metric", "higher_is_better", "metric_low", "metric_high"]
"""The task type of the run's scored target, and its headline metric: name, direction, range."""
HEADLINE_COLUMNS = ["headline_test", "headline_train", "headline_val", "baseline_headline_test"]
"""The headline metric under generic names (the same values as the metric-named columns)."""
GROUP_COLUMNS = ["scored", "scored_target", "paired", "selection_rule", "revealed", "upper_bound", "family",
                 "other_role", "other_target", "other_headline_test", "domain_gap"]
"""What a run on a group of targets says about itself (see the module's docstring); None,
'' or False for a run on one target. `paired` is the record's plugin → run id, as JSON."""
SEARCH_COLUMNS = ["search_chosen", "search_trials", "search_account", "target_family", "target_axis", "target_axis_value",
                  "strategy_family", "strategy_axis", "strategy_axis_value"]
"""What a tuned run chose (its configuration as JSON, the number of trials it was chosen
from) and the sweeps an entry belongs to: the entry id as written (`family`), the swept
parameter (`axis`) and this entry's value."""
MEMBER_COLUMNS = ["task_group", "group_identity", "sampling", "single_task", "multitask_run_id", "task_delta",
                  "delta_m", "tasks_hurt"]
"""What the row of one task of a multi-task run says about that run (`tlbench.report.multitask`):
its group (name, and identity without data), sampling, the plugin of the single-task runs it is
compared with, the record's run id, the task's Δ over its single-task run, the run's
Δm and number of tasks hurt; None for other rows."""
COMPARED_PREFIX = "nt_vs_"
"""The metric (and column) of a comparison with a paired run: ``nt_vs_<plugin>``."""
COLUMNS = (KEY_COLUMNS + TASK_COLUMNS + HEADLINE_COLUMNS + GROUP_COLUMNS + SEARCH_COLUMNS + MEMBER_COLUMNS
           + list(RUN_METRICS) + PROVENANCE_COLUMNS)


def source_label(spec: dict) -> str:
    """Baselines are shown as the random-init twin of the source that defined them."""
    return baseline_label(spec['source']['id']) if spec.get("baseline") else spec["source"]["id"]


def identity_of(spec: dict) -> dict:
    """The record's identity, or one rebuilt from its spec when the record states none."""
    if isinstance(spec.get("identity"), dict):
        return spec["identity"]
    part = lambda name: {k: spec[name].get(k) for k in ("plugin", "version", "params")}  # noqa: E731
    return {"source": part("source") | {"fingerprint": spec["source"].get("fingerprint")},
            "target": part("target") | {"content_hash": spec["target"].get("content_hash")},
            "strategy": part("strategy"), "seed": spec["seed"], "init": spec.get("init")}


TARGET_PARTS = ("target", "targets", "scored")
"""The parts of an identity that say what a run was scored on (one target, or a group's
targets by role)."""


def _without_data(part: dict) -> dict:
    return {k: v for k, v in (part or {}).items() if k != "content_hash"}


def variant_of(spec: dict) -> str:
    """Everything but seed and data: runs with equal variants are repeats of one experiment."""
    identity = dict(identity_of(spec))
    identity.pop("seed", None)
    if isinstance(identity.get("targets"), dict):
        identity["targets"] = {role: _without_data(part) for role, part in identity["targets"].items()}
    else:
        identity["target"] = _without_data(identity.get("target"))
    return config_hash(identity, 8)


def entry_of(spec: dict) -> str:
    """The (source, strategy) part of the identity: what a leaderboard row stands for. A
    tuned strategy (a search's final) stands for its search, not for the configuration
    each target chose, so its rows on different targets are one method."""
    identity = {k: v for k, v in identity_of(spec).items() if k not in ("seed", *TARGET_PARTS)}
    search = identity.get("search")
    if isinstance(search, dict) and isinstance(search.get("space"), dict) and isinstance(identity.get("strategy"),
                                                                                          dict):
        params = {**_dict(identity["strategy"].get("params")),
                  **{key: {"searched": values} for key, values in search["space"].items()}}
        identity["strategy"] = {**identity["strategy"], "params": params}
    return config_hash(identity, 8)


def source_identity_of(spec: dict) -> str:
    """Hash of the source's identity: the same source under two ids (or two sources under
    one id, in merged reports) are told apart by it."""
    return config_hash(identity_of(spec).get("source") or {}, 8)


def target_identity_of(spec: dict) -> str:
    """Hash of the target's identity without its data (or of a group's targets by role)."""
    identity = identity_of(spec)
    if isinstance(identity.get("targets"), dict):
        targets = {role: _without_data(part) for role, part in identity["targets"].items()}
        return config_hash({"targets": targets, "scored": identity.get("scored")}, 8)
    target = {k: v for k, v in (identity.get("target") or {}).items() if k != "content_hash"}
    return config_hash(target, 8)


def _flat(prefix: str, params: dict) -> dict:
    return {f"p_{prefix}_{key}": (canonical_json(value) if isinstance(value, (list, dict)) else value)
            for key, value in params.items()}


def run_row(record: dict) -> dict:
    spec, prov = record["spec"], record.get("provenance") or {}
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    error = record.get("error") if isinstance(record.get("error"), dict) else {}
    task = task_of(record)
    head = headline_spec(task)
    metrics = record["metrics"]
    row = {
        "run_id": record["run_id"], "status": record["status"], "target": spec.get("group") or spec["target"]["id"],
        "source": source_label(spec), "strategy": spec["strategy"]["id"], "seed": spec["seed"],
        "baseline": bool(spec.get("baseline")), "entry": entry_of(spec),
        "target_identity": target_identity_of(spec), "variant": variant_of(spec),
        "source_identity": source_identity_of(spec),
        "source_plugin": spec["source"]["plugin"], "source_version": spec["source"]["version"],
        "strategy_plugin": spec["strategy"]["plugin"], "strategy_version": spec["strategy"]["version"],
        "target_plugin": spec["target"]["plugin"], "target_version": spec["target"]["version"],
        "init": spec.get("init"), "content_hash": spec["target"].get("content_hash"),
        "source_fingerprint": spec["source"].get("fingerprint"), "baseline_run_id": spec.get("baseline_run_id"),
    }
    row.update({"task": task["name"], "metric": task["headline"], "higher_is_better": bool(head["higher_is_better"]),
                "metric_low": head.get("low"), "metric_high": head.get("high")})
    row.update({f"headline_{split}": metrics.get(f"{split}_{task['headline']}") for split in ("test", "train", "val")})
    row["baseline_headline_test"] = metrics.get(f"baseline_test_{task['headline']}")
    row.update({key: metrics.get(key) for key in RUN_METRICS})
    row.update({key: metrics.get(key) for key in task_metric_keys(task)})
    row.update({f"{name}_version": versions.get(name) for name in LIBRARIES})
    row.update({
        "device": prov.get("device"), "device_name": prov.get("device_name"), "host": prov.get("host"),
        "platform": prov.get("platform"), "git_revision": prov.get("git_revision"),
        "deterministic": prov.get("deterministic"), "threads": prov.get("threads"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"), "attempt": record.get("attempt"),
        "error_type": error.get("type"), "error_message": error.get("message"),
    })
    row.update(group_facts(record, task, bool(head["higher_is_better"]), row["headline_test"]))
    row.update(search_facts(spec))
    member = record.get("member") if isinstance(record.get("member"), dict) else {}
    row.update({key: member.get(key) for key in MEMBER_COLUMNS})
    row.update({key: value for key, value in metrics.items() if key.startswith(COMPARED_PREFIX)})
    for part in ("source", "target", "strategy"):
        row.update(_flat(part, spec[part].get("params") or {}))
    return {key: _plain(value) for key, value in row.items()}


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def paired_of(spec: dict) -> dict[str, str]:
    """The runs a record is compared with: plugin → run id (what is not a string, dropped)."""
    return {str(plugin): run_id for plugin, run_id in _dict(spec.get("paired")).items() if isinstance(run_id, str)}


def group_facts(record: dict, task: dict, higher_is_better: bool, scored_test) -> dict:
    """The `GROUP_COLUMNS` of a record, read as data: roles, rules and families are
    whatever the record names."""
    spec, details = record["spec"], _dict(record.get("details"))
    selection = _dict(details.get("selection"))
    revealed = [str(item) for item in details.get("revealed") or [] if isinstance(item, str)] \
        if isinstance(details.get("revealed"), list) else []
    method = _dict(_dict(details.get("strategy")).get("method"))
    paired = paired_of(spec)
    facts = {"scored": spec.get("scored") if isinstance(spec.get("scored"), str) else None,
             "scored_target": spec["target"].get("id") if spec.get("group") else None,
             "paired": canonical_json(paired) if paired else None,
             "selection_rule": selection.get("rule") if isinstance(selection.get("rule"), str) else None,
             "revealed": ", ".join(revealed) or None, "upper_bound": bool(revealed),
             "family": method.get("family") if isinstance(method.get("family"), str) else None,
             "other_role": None, "other_target": None, "other_headline_test": None, "domain_gap": None}
    key = f"test_{task['headline']}"
    others = [(role, _number(_dict(scores.get("metrics")).get(key)))
              for role, scores in sorted(_dict(details.get("by_role")).items())
              if isinstance(scores, dict) and scores.get("task") == task["name"] and role != facts["scored"]]
    others = [(role, value) for role, value in others if value is not None]
    if len(others) == 1:  # one other domain scored by the same headline: the domain gap
        role, value = others[0]
        targets = _dict(spec.get("targets"))
        facts.update(other_role=role, other_target=_dict(targets.get(role)).get("id"), other_headline_test=value)
        scored = _number(scored_test)
        if scored is not None:
            facts["domain_gap"] = (value - scored) if higher_is_better else (scored - value)
    return facts


def search_facts(spec: dict) -> dict:
    """The `SEARCH_COLUMNS` of a record's spec."""
    search = _dict(spec.get("search"))
    chosen = search.get("chosen")
    account = {key: search.get(key) for key in ("metric", "higher_is_better", "score", "refit", "seeds")}
    account["configurations"] = [{"params": _dict(c).get("params"), "score": _dict(c).get("score")}
                                 for c in search.get("configurations") or [] if isinstance(c, dict)]
    facts = {"search_chosen": canonical_json(chosen) if isinstance(chosen, dict) else None,
             "search_trials": search.get("n_trials") if isinstance(search.get("n_trials"), int) else None,
             "search_account": canonical_json(account) if isinstance(chosen, dict) else None}
    for part in ("target", "strategy"):
        sweep = _dict(_dict(spec.get(part)).get("sweep"))
        value = sweep.get("value")
        facts[f"{part}_family"] = sweep.get("family") if isinstance(sweep.get("family"), str) else None
        facts[f"{part}_axis"] = sweep.get("param") if isinstance(sweep.get("param"), str) else None
        facts[f"{part}_axis_value"] = None if value is None else canonical_json(value)  # JSON text: one type
    return facts


def _plain(value):
    """Strings, numbers, booleans or None: anything else a record holds becomes JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return canonical_json(value)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """The long table of runs in a stable order (the run kind's report rows); targets
    whose records disagree on the data are split into data groups (`frame_conflicts`)."""
    rows = [run_row(record) for record in records]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    metric_columns = _metric_columns(records)
    compared = compared_columns(frame)
    for column in compared:
        if column not in frame:
            frame[column] = None
    for column in [*HEADLINE_COLUMNS, *RUN_METRICS, *metric_columns, *compared, "metric_low", "metric_high",
                   "other_headline_test", "domain_gap", "task_delta", "delta_m", "tasks_hurt"]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["upper_bound"] = frame["upper_bound"].fillna(False).astype(bool)
    _pair_with_baselines(frame)
    _pair_with_compared(frame)
    conflicts = find_conflicts(frame)
    frame["data_group"] = data_groups(frame, conflicts)
    frame["target_key"] = frame["target_identity"] + frame["data_group"].map(
        lambda g: f"@{config_hash(g, 6)}" if g else "")
    frame["target_label"] = _target_labels(frame)
    frame["variant_note"] = _variant_notes(frame)
    params = sorted(c for c in frame.columns if c.startswith("p_"))
    frame = frame[COLUMNS[:COLUMNS.index(PROVENANCE_COLUMNS[0])] + metric_columns + compared + PROVENANCE_COLUMNS
                  + params]
    return frame.sort_values(["target_label", "baseline", "source", "strategy", "variant_note", "seed", "run_id"],
                             ascending=[True, False, True, True, True, True, True],
                             kind="stable").reset_index(drop=True)


def frame_conflicts(frame: pd.DataFrame) -> list[Conflict]:
    """The data conflicts among a frame's runs (what made its data groups)."""
    return find_conflicts(frame) if len(frame) else []


def _metric_columns(records: list[dict]) -> list[str]:
    """Every task metric the records hold, by task in order of appearance."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(task_metric_keys(task_of(record))))
    return list(columns)


def _pair_with_baselines(frame: pd.DataFrame) -> None:
    """NT = the test headline − that of the same-seed baseline (signed by the headline's
    direction), from the baseline's own record."""
    ok = frame[frame["status"] == "ok"]
    baseline_score = dict(zip(ok["run_id"], ok["headline_test"]))
    paired = frame["baseline_run_id"].map(baseline_score)
    found = paired.notna() & (frame["status"] == "ok") & ~frame["baseline"].astype(bool)
    if not found.any():
        return
    sign = frame["higher_is_better"].map(lambda higher: 1.0 if higher else -1.0)
    difference = sign[found] * (frame.loc[found, "headline_test"] - paired[found])
    frame.loc[found, "baseline_headline_test"] = paired[found]
    frame.loc[found, "negative_transfer"] = difference
    frame.loc[found, "negative_transfer_relative"] = difference / paired[found].abs().where(paired[found] != 0)
    for metric, rows in frame[found].groupby("metric"):
        frame.loc[rows.index, f"baseline_test_{metric}"] = paired[rows.index]


def compared_columns(frame: pd.DataFrame) -> list[str]:
    """The ``nt_vs_<plugin>`` columns a table has or its runs' pairings call for, sorted."""
    names = {column for column in frame.columns if column.startswith(COMPARED_PREFIX)}
    if "paired" in frame:
        for text in frame["paired"].dropna():
            names |= {COMPARED_PREFIX + plugin for plugin in json.loads(text)}
    return sorted(names)


def _pair_with_compared(frame: pd.DataFrame) -> None:
    """``nt_vs_<plugin>`` = the test headline − that of the paired run of that plugin
    (signed by the headline's direction), from the paired run's own record when the
    report has it (so the order in which runs finished does not matter); the value the
    record stored otherwise."""
    ok = frame[(frame["status"] == "ok") & frame["headline_test"].notna()]
    score = dict(zip(ok["run_id"], ok["headline_test"]))
    for index in frame.index[frame["paired"].notna() & (frame["status"] == "ok")]:
        ours = frame.at[index, "headline_test"]
        sign = 1.0 if frame.at[index, "higher_is_better"] else -1.0
        for plugin, run_id in json.loads(frame.at[index, "paired"]).items():
            if run_id in score and not pd.isna(ours):
                frame.at[index, COMPARED_PREFIX + plugin] = sign * (ours - score[run_id])


def _distinguish(frame: pd.DataFrame, key: str, label: str, facets: list[tuple[str, str]]) -> pd.Series:
    """A note per row naming what tells apart keys that share a label ('' when none do):
    the fewest facets, in the order given, that make the keys distinct."""
    notes = pd.Series("", index=frame.index, dtype=object)
    for _, group in frame.groupby(label, sort=False):
        keys = group.drop_duplicates(key)
        if len(keys) < 2:
            continue
        shown: list[tuple[str, str]] = []
        for column, fmt in facets:
            if keys[column].astype(str).nunique() > 1:
                shown.append((column, fmt))
            if not keys.duplicated([c for c, _ in shown] or [key]).any() and shown:
                break
        for value, rows in group.groupby(key, sort=False):
            first = rows.iloc[0]
            parts = [fmt.format(_shown(first[column])) for column, fmt in shown] or [f"#{value[:6]}"]
            notes.loc[rows.index] = ", ".join(parts)
    return notes


def _shown(value) -> str:
    return "none" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _target_labels(frame: pd.DataFrame) -> pd.Series:
    facets = [("target_plugin", "{}"), ("target_version", "v{}"), ("target_identity", "config #{:.6}"),
              ("data_group", "data from {}")]
    notes = _distinguish(frame, "target_key", "target", facets)
    return frame["target"] + notes.map(lambda note: f" [{note}]" if note else "")


def _variant_notes(frame: pd.DataFrame) -> pd.Series:
    pair = frame["source"] + "\0" + frame["strategy"]
    facets = [("source_plugin", "source {}"), ("source_version", "source v{}"),
              ("strategy_plugin", "strategy {}"), ("strategy_version", "strategy v{}"), ("init", "{} init"),
              ("source_fingerprint", "weights {:.8}"), ("selection_rule", "selection {}"),
              ("entry", "config #{:.6}")]
    return _distinguish(frame.assign(_pair=pair), "entry", "_pair", facets)


def kept_apart_notes(frame: pd.DataFrame) -> list[str]:
    """One line per look-alike entry or target that the report keeps apart."""
    notes = []
    for (source, strategy), group in frame.groupby(["source", "strategy"], sort=True):
        variants = group.drop_duplicates("entry")
        if len(variants) > 1:
            notes.append(f"{source} · {strategy} appears as {len(variants)} different entries "
                         f"({'; '.join(variants['variant_note'])}); shown as separate rows, never pooled")
    baselines = frame[frame["baseline"].astype(bool)]
    for (source, target), group in baselines.groupby(["source", "target"], sort=True):
        if group["entry"].nunique() > 1:
            notes.append(f"{source} on {target} has {group['entry'].nunique()} from-scratch recipes (the suite's "
                         f"baseline changed); each run's NT is against the baseline it was planned with")
    for target, group in frame.groupby("target", sort=True):
        keys = group.drop_duplicates("target_key")
        if len(keys) > 1:
            notes.append(f"target {target} appears as {len(keys)} different targets "
                         f"({'; '.join(keys['target_label'])}); compared separately, never pooled")
    return notes
