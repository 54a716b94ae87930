"""`tlbench merge`: two machines' result directories with overlapping runs, a target whose
data differ between the machines, and malformed records."""

from __future__ import annotations

import json

import pytest
from test_report_aggregate import RecordSet

from tlbench.results.merge import merge_dirs
from tlbench.report import build_report


def machine_a() -> RecordSet:
    rs = RecordSet("lab-a")
    for seed, (base, good) in enumerate([(0.5, 0.8), (0.6, 0.9), (0.55, 0.85)]):
        rs.baseline("t1", seed, base)
        rs.run("good", "lp", "t1", seed, good)
        rs.baseline("t2", seed, 0.4)
        rs.run("good", "lp", "t2", seed, 0.7)
    rs.run("good", "ft", "t2", 0, None, status="timeout")
    return rs


def machine_b(a: RecordSet) -> RecordSet:
    """Lab B: t1 from a different version of its data set (content hashes differ), t2 with
    the same data as lab A: some runs copied over unchanged, one rerun with its own numbers,
    and the run that timed out on A finished here."""
    rs = RecordSet("lab-b")
    for seed, (base, good) in enumerate([(0.2, 0.3), (0.3, 0.4), (0.25, 0.35)]):
        rs.baseline("t1", seed, base, data="v2")
        rs.run("good", "lp", "t1", seed, good, data="v2")
        rs.baselines[("t2", seed, "v1")] = next(r for r in a.baselines.values()
                                                 if r["spec"]["target"]["id"] == "t2" and r["spec"]["seed"] == seed)
    copied = [r for r in a.records.values() if r["spec"]["target"]["id"] == "t2" and r["status"] == "ok"]
    rs.records.update({r["run_id"]: r for r in copied})
    rerun = rs.run("good", "lp", "t2", 0, 0.75)  # same run id as lab A's, different numbers
    assert rerun["run_id"] in a.records
    rs.run("good", "ft", "t2", 0, 0.72)
    return rs


@pytest.fixture
def two_machines(tmp_path):
    a = machine_a()
    b = machine_b(a)
    dir_a, dir_b = a.write(tmp_path / "lab-a"), b.write(tmp_path / "lab-b")
    runs_b = dir_b / "runs"
    malformed = {
        "bad-json": (runs_b / "aaaaaaaaaaaaaaaaaaaa.json", "{\"run_id\": "),
        "bad-schema": (runs_b / "bbbbbbbbbbbbbbbbbbbb.json",
                       json.dumps({"schema_version": 1, "kind": "run", "run_id": "bbbbbbbbbbbbbbbbbbbb",
                                   "status": "ok", "spec": {}, "metrics": {}, "provenance": {}})),
    }
    forged = dict(next(iter(b.records.values())))
    forged["metrics"] = dict(forged["metrics"], test_accuracy=7.5)
    malformed["implausible"] = (runs_b / "eeeeeeeeeeeeeeeeeeee.json", json.dumps(forged))
    renamed = dict(next(r for r in b.records.values() if r["status"] == "ok" and r["spec"]["seed"] == 2))
    malformed["wrong-name"] = (runs_b / "cccccccccccccccccccc.json", json.dumps(renamed))
    tampered = json.loads(json.dumps(renamed))
    tampered["spec"]["seed"] = 7
    tampered["spec"]["identity"]["seed"] = 7
    malformed["tampered"] = (runs_b / "dddddddddddddddddddd.json", json.dumps(dict(tampered, run_id="d" * 20)))
    for path, text in malformed.values():
        path.write_text(text, encoding="utf-8")
    return a, b, dir_a, dir_b, {k: p for k, (p, _) in malformed.items()}


def test_merge_validates_dedupes_and_keeps_conflicts_apart(tmp_path, two_machines):
    a, b, dir_a, dir_b, malformed = two_machines
    out = tmp_path / "merged"
    result = merge_dirs([dir_a, dir_b], out)

    problems = {p.path: p.message for p in result.problems}
    assert set(problems) == set(malformed.values())
    assert "unreadable JSON" in problems[malformed["bad-json"]]
    assert "missing spec.source" in problems[malformed["bad-schema"]]
    assert "metrics.test_accuracy is 7.5" in problems[malformed["implausible"]]
    assert "file name does not match" in problems[malformed["wrong-name"]]
    assert "run_id is not the hash of spec.identity" in problems[malformed["tampered"]]

    expected = set(a.records) | set(b.records)
    merged = {p.stem for p in (out / "runs").glob("*.json")}
    assert merged == expected
    assert result.written == len(expected)
    # the overlap: lab B's copies of lab A's t2 records are identical; one rerun differs
    duplicates = {d.record_id: d for d in result.duplicates}
    assert set(duplicates) == set(a.records) & set(b.records)
    differing = [d for d in result.duplicates if not d.identical]
    rerun = next(r for r in b.records.values() if r["spec"]["target"]["id"] == "t2"
                 and r["spec"]["seed"] == 0 and r["spec"]["strategy"]["id"] == "lp" and not r["spec"]["baseline"])
    ft = next(r for r in b.records.values() if r["spec"]["strategy"]["id"] == "ft")
    assert sorted(d.record_id for d in differing) == sorted([rerun["run_id"], ft["run_id"]])
    kept = json.loads((out / "runs" / f"{rerun['run_id']}.json").read_text())
    assert kept["metrics"]["test_accuracy"] == 0.7 and kept["provenance"]["host"] == "lab-a"  # first given wins
    # the timeout on lab A is superseded by lab B's ok record of the same run
    assert json.loads((out / "runs" / f"{ft['run_id']}.json").read_text())["status"] == "ok"
    # lab B's t1 used other data: reported, and both kept
    kept_apart = build_report([out], out).kept_apart  # the merged directory's report says so
    assert kept_apart and all("t1" in note for note in kept_apart[:3])
    assert sum("content hashes" in note for note in kept_apart) == 3  # one per seed


def test_conflicting_data_never_share_a_cell(tmp_path, two_machines):
    _, _, dir_a, dir_b, _ = two_machines
    out = tmp_path / "merged"
    merge_dirs([dir_a, dir_b], out)
    report = build_report([out], out)
    summary = json.loads((out / "summary.json").read_text())
    cells = {(c["target_label"], c["source"], c["strategy"]): c for c in summary["cells"]}
    a_cell = cells[("t1 [data from lab-a]", "good", "lp")]
    b_cell = cells[("t1 [data from lab-b]", "good", "lp")]
    assert a_cell["test_mean"] == pytest.approx(0.85) and a_cell["n_seeds"] == 3
    assert b_cell["test_mean"] == pytest.approx(0.35) and b_cell["n_seeds"] == 3
    assert a_cell["nt_mean"] == pytest.approx(0.30) and b_cell["nt_mean"] == pytest.approx(0.10)
    assert ("t1", "good", "lp") not in cells
    t2 = cells[("t2", "good", "lp")]
    assert t2["n_seeds"] == 3 and t2["test_mean"] == pytest.approx(0.70)
    assert cells[("t2", "good", "ft")]["n_seeds"] == 1
    hosts = [m["host"] for m in summary["meta"]["provenance"]["machines"]]
    assert sorted(hosts) == ["lab-a", "lab-b"]
    assert any("records disagree on the data" in note for note in report.notes)
    assert "t1 [data from lab-a]" in report.markdown and "t1 [data from lab-b]" in report.markdown


def test_merge_is_idempotent_and_keeps_existing_records(tmp_path, two_machines):
    _, _, dir_a, dir_b, _ = two_machines
    out = tmp_path / "merged"
    merge_dirs([dir_a], out)
    before = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    again = merge_dirs([dir_a], out)
    assert again.written == 0 and again.unchanged == len(before)
    merge_dirs([dir_b], out)
    after = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    assert set(before) < set(after)
    replaced = [name for name in before if before[name] != after[name]]
    assert len(replaced) == 1  # lab A's timeout, now lab B's ok record; the failure is kept aside
    assert [p.name.split(".")[0] for p in (out / "runs" / "attempts").glob("*.json")] == [replaced[0][:-5]]


def test_merge_cli_reports_paths_and_exit_code(tmp_path, two_machines, cli):
    a, b, dir_a, dir_b, malformed = two_machines
    out = tmp_path / "merged"
    result = cli("merge", str(dir_a), str(dir_b), "--out", str(out), "--title", "two labs")
    assert result.returncode == 1, result.stderr  # some records were skipped
    for path in malformed.values():
        assert str(path) in result.stderr
    assert "kept apart: target 't1' seed 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert "5 invalid records skipped" in result.stdout
    # duplicates: one line per input directory, not one per record (--verbose lists them)
    shared = len(set(a.records) & set(b.records))
    lines = {line.split(": ")[0]: line for line in result.stdout.splitlines() if line.startswith(str(tmp_path))}
    assert lines[str(dir_a)] == f"{dir_a}: {len(a.records)} valid records"
    assert lines[str(dir_b)] == (f"{dir_b}: {len(b.records)} valid records; {shared} duplicates of records already "
                                 f"merged ({shared - 2} identical, 2 different: the first ok one kept)")
    assert "duplicate of" not in result.stderr
    verbose = cli("merge", str(dir_a), str(dir_b), "--out", str(tmp_path / "verbose"), "--verbose")
    listed = [line for line in verbose.stderr.splitlines() if "duplicate of" in line]
    assert len(listed) == shared and all(line.startswith(f"tlbench: note: {dir_b}") for line in listed
                                         if "(identical)" in line)
    assert sum(line.startswith("tlbench: warning: ") for line in listed) == 2
    assert (out / "leaderboard.html").is_file()
    assert "# tlbench leaderboard: two labs" in (out / "leaderboard.md").read_text()
    missing = cli("merge", str(tmp_path / "nowhere"), "--out", str(out))
    assert missing.returncode == 2 and "nowhere: no such result directory" in missing.stderr


def test_report_of_corrupt_records_reports_the_valid_ones_and_exits_1(tmp_path, two_machines, cli):
    _, b, _, dir_b, malformed = two_machines
    out = tmp_path / "report"
    result = cli("report", str(dir_b), "--out", str(out))
    assert result.returncode == 1, result.stderr  # as merge does
    warnings = [line for line in result.stderr.splitlines() if line.startswith("tlbench: warning: ")]
    assert len(warnings) == len(malformed) and "Traceback" not in result.stderr
    for path in malformed.values():
        assert sum(str(path) in line for line in warnings) == 1
    assert f"{len(b.records)} records, {len(malformed)} invalid records skipped; wrote" in result.stdout
    assert (out / "leaderboard.md").is_file() and "# tlbench leaderboard" in result.stdout
