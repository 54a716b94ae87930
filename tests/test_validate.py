"""`tlbench validate`: a real small run's directory passes; each sort of problem a
submission can have is one line and exit 1; version drift against a site is a note."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from tlbench.cli import main
from tlbench.results.paths import absolute_paths
from tlbench.results.records import INTEGRITY, seal

SUITE = """
[suite]
name = "validate-me"
seeds = [0]
device = "cpu"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
file = "{weights}"
input_size = 32

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1, 2]
shots = 5
val_shots = 3

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 8
"""


@pytest.fixture(scope="module")
def submission(tmp_path_factory, resnet_file) -> Path:
    """A real run's result directory: a local weights file in the tlbench cache, a
    probe, a fine-tune and their from-scratch baseline."""
    root = tmp_path_factory.mktemp("submission")
    cache = root / "cache"
    (cache / "weights").mkdir(parents=True)
    shutil.copy(resnet_file, cache / "weights" / "test_resnet.safetensors")
    suite = root / "suite.toml"
    suite.write_text(SUITE.format(weights=cache / "weights" / "test_resnet.safetensors"), encoding="utf-8")
    out = root / "results"
    result = run_cli("run", str(suite), "--out", str(out), "--executor", "inline",
                     env={"TLBENCH_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def copy(submission, tmp_path) -> Path:
    return Path(shutil.copytree(submission, tmp_path / "results"))


def validate(capsys, *args) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out.splitlines()


def record_path(directory: Path, plugin: str = "linear-probe") -> Path:
    """The run record of `plugin` (not the baseline)."""
    for path in sorted((directory / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        if record["spec"]["strategy"]["plugin"] == plugin and not record["spec"]["baseline"]:
            return path
    raise AssertionError(f"no {plugin} record")


def rewrite(path: Path, change, sealed: bool = True) -> None:
    """Change a record; re-seal it (as a forger would) unless `sealed` is False."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(seal(record) if sealed else record, indent=1), encoding="utf-8")


def test_a_real_run_passes(submission, capsys):
    assert main(["validate", str(submission)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "tlbench validate: 3 records; no problems\n"
    for path in (submission / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        assert set(record[INTEGRITY]) == {"sha256"} and absolute_paths(record) == []
        if not record["spec"]["baseline"]:  # the local weights file, named from the cache's root
            assert record["details"]["source"]["weights"] == "<tlbench-cache>/weights/test_resnet.safetensors"


def test_a_tampered_metric_is_one_line(copy, capsys):
    path = record_path(copy)
    record = json.loads(path.read_text())
    record["metrics"]["test_accuracy"] = 1.0 if record["metrics"]["test_accuracy"] != 1.0 else 0.5
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    code, lines = validate(capsys, copy)
    assert code == 1
    assert lines == [f"{path}: integrity digest does not match: edited after it was written"]


def test_a_forged_metric_with_a_fresh_digest_is_caught_by_what_it_derives(copy, capsys):
    path = record_path(copy)

    def forge(record):
        record["metrics"]["test_accuracy"] = record["metrics"]["test_accuracy"] / 2

    rewrite(path, forge)
    code, lines = validate(capsys, copy)
    assert code == 1 and lines and all(line.startswith(f"{path}: metrics.") for line in lines)
    named = {line.split("metrics.")[1].split(" ")[0] for line in lines}
    assert {"overfitting_gap", "negative_transfer"} <= named


def test_missing_provenance_is_one_line(copy, capsys):
    path = record_path(copy)
    rewrite(path, lambda record: record["provenance"].pop("host"))
    code, lines = validate(capsys, copy)
    assert code == 1 and lines == [f"{path}: provenance incomplete: missing provenance.host"]


def test_selection_on_test_labels_is_one_line(copy, capsys):
    path = record_path(copy)

    def select_on_test(record):
        record["details"]["selection"] = {"rule": "test", "metric": "test_accuracy", "higher_is_better": True,
                                          "reads": ["target:test:labels"]}

    rewrite(path, select_on_test)
    code, lines = validate(capsys, copy)
    assert code == 1
    assert lines == [f"{path}: selection read test labels (rule 'test', metric 'test_accuracy', target:test:labels)"]


def test_test_label_reads_are_caught_in_every_spelling():
    from tlbench.results.validate import selection_problems

    spec = {"target": {"id": "t"}}
    for read in ("target:test:labels", "TEST:labels", "target:Test:LABELS"):
        record = {"spec": spec, "details": {"selection": {"rule": "val", "reads": [read]}}}
        assert selection_problems(record) == [f"selection read test labels ({read})"], read
    fine = {"spec": spec, "details": {"selection": {"rule": "val", "reads": ["target:val:labels", "test:images"]}}}
    assert selection_problems(fine) == []


def test_an_absolute_home_path_is_one_line(copy, capsys):
    path = record_path(copy)
    weights = "/home/alice/.cache/tlbench/pretrain/0123abcd.safetensors"
    rewrite(path, lambda record: record["details"]["source"].update(weights=weights))
    code, lines = validate(capsys, copy)
    assert code == 1 and lines == [f"{path}: absolute path at details.source.weights: {weights}"]


def test_records_without_a_digest_and_unreadable_files(copy, capsys):
    path = record_path(copy)
    rewrite(path, lambda record: record.pop(INTEGRITY), sealed=False)
    broken = copy / "runs" / ("f" * 20 + ".json")
    broken.write_text('{"run_id": ', encoding="utf-8")
    code, lines = validate(capsys, copy)
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith(f"{path}: no integrity digest (tlbench 0.1 wrote none)")
    assert lines[1].startswith(f"{broken}: unreadable JSON")


def test_an_upper_bound_must_say_so(copy, capsys):
    """A run on a group of targets that selects on the scored role's val labels is an
    upper bound: fine when `revealed` says those labels were given, a problem if not."""
    path = record_path(copy)

    def oracle(record, revealed: bool):
        target = record["spec"]["target"]
        record["spec"].update(targets={"labelled": target, "unlabelled": target}, scored="unlabelled", group="g")
        record["details"]["selection"] = {"rule": "oracle", "metric": "target_val_accuracy", "higher_is_better": True,
                                          "reads": ["unlabelled:val:labels"]}
        if revealed:
            record["details"]["revealed"] = ["unlabelled:val"]

    original = path.read_text()
    rewrite(path, lambda record: oracle(record, revealed=False))
    code, lines = validate(capsys, copy)
    assert code == 1 and len(lines) == 1 and "unlabelled:val:labels" in lines[0] and "upper bound" in lines[0]
    path.write_text(original, encoding="utf-8")
    rewrite(path, lambda record: oracle(record, revealed=True))
    assert validate(capsys, copy) == (0, [])


def test_version_drift_against_a_site_is_a_note(submission, tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "plugins.json").write_text(json.dumps({"linear-probe": ["0", "7"], "digits": ["1"], "other": ["3"]}))
    code, lines = validate(capsys, submission, "--against", site)
    version = json.loads(record_path(submission).read_text())["spec"]["strategy"]["version"]
    assert code == 0
    assert lines == [f"note: {submission}: plugin linear-probe version {version}: the site has 0, 7; its results "
                     f"will be shown apart, not averaged"]


def test_unusable_input_is_exit_2(submission, tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such result directory" in capsys.readouterr().err
    (tmp_path / "site").mkdir()
    assert main(["validate", str(submission), "--against", str(tmp_path / "site")]) == 2
    assert "plugins.json: missing" in capsys.readouterr().err
    (tmp_path / "site" / "plugins.json").write_text('["linear-probe"]')
    assert main(["validate", str(submission), "--against", str(tmp_path / "site")]) == 2
    assert "plugins.json: expected" in capsys.readouterr().err


def test_data_conflicts_are_one_line_each(tmp_path, capsys):
    from test_merge import machine_a, machine_b

    a = machine_a()
    dir_a, dir_b = a.write(tmp_path / "lab-a"), machine_b(a).write(tmp_path / "lab-b")
    code, lines = validate(capsys, dir_a, dir_b)
    assert code == 1
    conflicts = [line for line in lines if "records disagree on the data" in line]
    assert len(conflicts) == 3 and all(line.startswith(f"{dir_a}, {dir_b}: target 't1' seed ") for line in conflicts)
