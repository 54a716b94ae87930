"""Transferability estimates are split into data groups as runs are: merged records from
two machines whose target data differ give each machine's scores their own cells, and a
score is correlated only with accuracies computed on the data it was computed on."""

from __future__ import annotations

import json

import pytest
from test_report_aggregate import CLASSIFICATION, RecordSet

from tlbench.hashing import config_hash
from tlbench.plan.matrix import RunSpec
from tlbench.plan.suite import Entry
from tlbench.report import build_report
from tlbench.report.aggregate import cell_table
from tlbench.report.estimates import correlation_table, estimates_frame, score_table
from tlbench.report.frame import records_frame
from tlbench.results.records import new_record, validate_record
from tlbench.run.execute import record_spec

SOURCES = ("s1", "s2", "s3")


class Machine(RecordSet):
    """A RecordSet that also writes estimate records (on the same targets and sources)."""

    def __init__(self, host: str):
        super().__init__(host)
        self.estimates: dict[str, dict] = {}

    def estimate(self, source: str, target: str, seed: int, score: float, *, data="v1", shots=10) -> dict:
        spec = RunSpec(Entry("source", source, "pretrain", "1", {"model": "resnet18", "tag": source}),
                       (("target", self._target(target, "1", shots)),),
                       Entry("estimator", "logme", "logme", "1", {}), seed, kind="estimate",
                       source_fingerprint=f"weights-of-{source}",
                       content_hashes=(config_hash([target, data, shots, seed]),), task=CLASSIFICATION)
        record = new_record(record_spec(spec), spec.run_id, "ok", metrics={"score": score}, kind="estimate",
                            provenance={"host": self.host, "device": "cpu"}, task=spec.task)
        assert validate_record(record) == [], validate_record(record)
        self.estimates[spec.run_id] = record
        return record

    def write(self, directory):
        super().write(directory)
        folder = directory / "estimates"
        folder.mkdir(parents=True, exist_ok=True)
        for run_id, record in self.estimates.items():
            (folder / f"{run_id}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        return directory


def machine(host: str, data: str, accuracies: tuple[float, ...], scores: tuple[float, ...],
            estimates_only: bool = False) -> Machine:
    """Target t1 on this machine's version of its data: each source fine-tuned (`lp`)
    and scored by `logme` over two seeds."""
    rs = Machine(host)
    for seed in (0, 1):
        for source, accuracy, score in zip(SOURCES, accuracies, scores):
            if not estimates_only:
                rs.run(source, "lp", "t1", seed, accuracy + 0.01 * seed, data=data)
            rs.estimate(source, "t1", seed, score + 0.1 * seed, data=data)
    return rs


def lab_a() -> Machine:
    """s1 transfers best on lab A's data, and logme says so."""
    return machine("lab-a", "v1", (0.9, 0.8, 0.7), (3.0, 2.0, 1.0))


def lab_b() -> Machine:
    """Lab B's data reverse the order, and so does logme on them."""
    return machine("lab-b", "v2", (0.6, 0.7, 0.8), (1.0, 2.0, 3.0))


def tables(*machines: Machine, runs_given: bool = True):
    runs = records_frame([r for m in machines for r in m.records.values()])
    estimates = estimates_frame([r for m in machines for r in m.estimates.values()])
    scores = score_table(estimates, runs if runs_given else None)
    return scores, correlation_table(scores, cell_table(runs))


@pytest.mark.parametrize("runs_given", [True, False], ids=["with-runs", "estimates-alone"])
def test_each_machines_scores_meet_only_its_own_accuracies(runs_given):
    """Pooled, the two machines' scores would average out to a tie (τ undefined); kept
    apart, each machine's logme ranks its own sources exactly."""
    scores, correlations = tables(lab_a(), lab_b(), runs_given=runs_given)
    assert sorted(scores["target"].unique()) == ["t1 [data from lab-a]", "t1 [data from lab-b]"]
    assert len(scores) == 6 and (scores["n_seeds"] == 2).all()
    means = scores.set_index(["target", "source"])["mean_score"]
    assert means[("t1 [data from lab-a]", "s1")] == pytest.approx(3.05)
    assert means[("t1 [data from lab-b]", "s1")] == pytest.approx(1.05)
    by_target = correlations.set_index("target")
    assert sorted(by_target.index) == ["t1 [data from lab-a]", "t1 [data from lab-b]"]
    assert (by_target["kendall_tau"] == 1.0).all() and (by_target["n_sources"] == 3).all()


def test_scores_on_data_no_run_saw_are_shown_but_compared_with_nothing():
    """Lab A fine-tuned and scored; lab C only scored, on other data. Lab A's runs agree
    among themselves (one plain target), so only the run table can tell which scores
    belong with them."""
    lab_c = machine("lab-c", "v3", (0.0, 0.0, 0.0), (1.0, 2.0, 3.0), estimates_only=True)
    scores, correlations = tables(lab_a(), lab_c)
    assert sorted(scores["target"].unique()) == ["t1", "t1 [data from lab-c]"]
    [row] = correlations.to_dict("records")
    assert (row["target"], row["kendall_tau"], row["n_sources"]) == ("t1", 1.0, 3)  # lab A's scores only


def test_machines_on_the_same_data_share_their_scores():
    twin = machine("lab-twin", "v1", (0.9, 0.8, 0.7), (3.0, 2.0, 1.0))
    scores, correlations = tables(lab_a(), twin)
    assert list(scores["target"].unique()) == ["t1"] and (scores["n_seeds"] == 4).all()
    assert correlations["kendall_tau"].tolist() == [1.0]


def test_the_report_keeps_each_machines_estimates_with_its_runs(tmp_path):
    """End to end: two result directories, one report."""
    dirs = [lab_a().write(tmp_path / "a"), lab_b().write(tmp_path / "b")]
    build_report(dirs, tmp_path / "out")
    estimates = json.loads((tmp_path / "out" / "summary.json").read_text())["estimates"]
    taus = {row["target"]: row["kendall_tau"] for row in estimates["correlations"]}
    assert taus == {"t1 [data from lab-a]": 1.0, "t1 [data from lab-b]": 1.0}
    assert {row["data_group"] for row in estimates["scores"]} == {"lab-a", "lab-b"}
