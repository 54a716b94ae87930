"""Records: schema validation, atomic writes, round trips, and what counts as done."""

from __future__ import annotations

import copy
import json

from tlbench.results.records import is_done, new_record, validate_record
from tlbench.results.store import RecordStore

SPEC = {
    "source": {"id": "s", "plugin": "timm", "version": "1", "params": {"model": "x"}},
    "target": {"id": "t", "plugin": "digits", "version": "1", "params": {}, "content_hash": "abc"},
    "strategy": {"id": "lp", "plugin": "linear-probe", "version": "1", "params": {}},
    "seed": 0, "init": "pretrained", "baseline": False, "baseline_run_id": None,
}


def make(run_id="0123456789abcdef0123", status="ok", acc=0.5):
    return new_record(copy.deepcopy(SPEC), run_id, status, metrics={"test_accuracy": acc if status == "ok" else None},
                      provenance={"host": "h"})


def test_round_trip(tmp_path):
    store = RecordStore(tmp_path / "runs")
    record = make()
    path = store.write(record)
    assert path.name == f"{record['run_id']}.json"
    assert store.load_all() == {record["run_id"]: json.loads(json.dumps(record))}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_validation_catches_problems():
    assert validate_record(make()) == []
    assert validate_record([]) == ["not a JSON object"]
    bad = make()
    bad["status"] = "fine"
    assert any("status" in p for p in validate_record(bad))
    bad = make()
    bad["metrics"]["test_accuracy"] = "high"
    assert any("metrics.test_accuracy" in p for p in validate_record(bad))
    bad = make()
    del bad["spec"]["target"]
    assert any("spec.target" in p for p in validate_record(bad))


def test_failures_are_never_done_and_are_kept_on_retry(tmp_path):
    store = RecordStore(tmp_path / "runs")
    failed = make(status="error")
    assert not is_done(failed) and is_done(make()) and not is_done(None)
    store.write(failed)
    retried = make()
    retried["attempt"] = 2
    store.write(retried)
    assert store.load_all()[retried["run_id"]]["status"] == "ok"
    kept = list((tmp_path / "runs" / "attempts").iterdir())
    assert len(kept) == 1 and json.loads(kept[0].read_text())["status"] == "error"


def test_corrupt_record_is_reported_not_fatal(tmp_path):
    store = RecordStore(tmp_path / "runs")
    good = make()
    store.write(good)
    broken = tmp_path / "runs" / "ffffffffffffffffffff.json"
    broken.write_text('{"schema_version": 1, "run_id": ')
    records = store.load_all()
    assert list(records) == [good["run_id"]]
    assert len(store.problems) == 1 and "ffffffffffffffffffff.json" in str(store.problems[0])
    # a rerun overwrites it and the unreadable file is kept aside, not lost
    replacement = make(run_id="ffffffffffffffffffff")
    store.write(replacement)
    assert set(store.load_all()) == {good["run_id"], "ffffffffffffffffffff"}
    assert len(list((tmp_path / "runs" / "corrupt").iterdir())) == 1


def test_nan_becomes_null(tmp_path):
    store = RecordStore(tmp_path / "runs")
    record = make()
    record["details"]["loss"] = float("nan")
    store.write(record)
    assert store.load_all()[record["run_id"]]["details"]["loss"] is None
