"""Where tlbench writes, and other command-line values, are checked before anything
runs: one line naming the option and the path, exit code 2, nothing left behind."""

from __future__ import annotations

import re

import pytest

from conftest import RANDOM_RESNET, THREE_DIGITS

SUITE = """
[suite]
name = "outputs"
seeds = [0]
device = "cpu"

[baseline]
enabled = false
""" + RANDOM_RESNET + THREE_DIGITS + """
[[strategies]]
id = "lp"
plugin = "linear-probe"
"""


def one_line_error(result, *fragments: str, after_progress: bool = False) -> None:
    """Exit code 2 and one line naming what is wrong; with `after_progress`, the progress
    header may come first (a problem found when the runs' sources are prepared)."""
    assert result.returncode == 2, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    if after_progress and re.fullmatch(r"tlbench: 1 run to do, 1 worker \(auto: .*\)", lines[0]):
        lines = lines[1:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_out_that_is_a_file_or_under_one(write_suite, cli, tmp_path, dry_run):
    suite = write_suite(SUITE)
    file = tmp_path / "results.txt"
    file.write_text("not a directory")
    flags = ["--dry-run"] if dry_run else []
    one_line_error(cli("run", str(suite), "--out", str(file), *flags), "--out:", "is a file; expected a directory")
    one_line_error(cli("run", str(suite), "--out", str(file / "sub"), *flags), "is a file (on the way to")
    assert file.read_text() == "not a directory"


def test_a_checked_out_directory_is_not_left_behind(write_suite, cli, tmp_path):
    suite = write_suite(SUITE)
    out = tmp_path / "a" / "b"
    result = cli("run", str(suite), "--out", str(out), "--device", "tpu")
    one_line_error(result, "--device: expected auto, cpu, cuda or cuda:N, got 'tpu'")
    result = cli("run", str(suite), "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "a").exists()


def test_cache_dir_that_is_a_file(write_suite, cli, tmp_path):
    file = tmp_path / "cache.txt"
    file.write_text("")
    result = cli("run", str(write_suite(SUITE)), "--out", str(tmp_path / "out"),
                 env={"TLBENCH_CACHE_DIR": str(file)})
    one_line_error(result, "cache directory (suite.cache_dir or TLBENCH_CACHE_DIR):", "is a file")
    assert not (tmp_path / "out").exists()


def test_a_target_with_one_class_is_refused(write_suite, cli, tmp_path):
    suite = write_suite(SUITE.replace("classes = [0, 1, 2]", "classes = [4]"))
    result = cli("run", str(suite), "--out", str(tmp_path / "out"))
    one_line_error(result, "targets[0] (d): seed 0: a target needs at least 2 classes, it has 1 "
                           "(the classification task)")
    assert not (tmp_path / "out").exists()


def test_report_and_merge_outputs(write_suite, cli, tmp_path):
    done = tmp_path / "done"
    result = cli("run", str(write_suite(SUITE)), "--out", str(done))
    assert result.returncode == 0, result.stderr + result.stdout
    before = sorted(p.relative_to(done) for p in done.rglob("*"))
    file = tmp_path / "file.txt"
    file.write_text("")
    one_line_error(cli("report", str(done), "--out", str(file)), "--out:", "is a file")
    one_line_error(cli("merge", str(done), "--out", str(file)), "--out:", "is a file")
    one_line_error(cli("merge", str(done), "--out", str(done / "runs")), "is inside the input directory")
    assert sorted(p.relative_to(done) for p in done.rglob("*")) == before
    into_itself = cli("merge", str(done), "--out", str(done))  # adding records next to its own is fine
    assert into_itself.returncode == 0, into_itself.stderr


def test_report_of_a_directory_without_records(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(cli("report", str(empty)), "empty: no records in it; expected a result directory")
    assert list(empty.iterdir()) == []
    file = tmp_path / "file.txt"
    file.write_text("")
    one_line_error(cli("report", str(file)), "file.txt: not a directory; expected a result directory")


def test_usage_mistakes_are_one_line(cli):
    for args, fragment in [((), "the following arguments are required: COMMAND"),
                           (("frob",), "invalid choice: 'frob'"),
                           (("run", "x.toml", "--jobs", "abc"),
                            "--jobs/-j: expected auto or a positive integer, got 'abc'"),
                           (("run", "x.toml", "--jobs", "0"), "--jobs/-j: expected auto or a positive integer, got '0'"),
                           (("run", "x.toml", "--out", ""), "--out: expected a directory, got an empty path")]:
        result = cli(*args)
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert fragment in line


@pytest.mark.parametrize("weights, message", [
    ("not weights", "cannot be loaded as weights"),
    (None, "is a directory; expected a weights file"),
])
def test_a_bad_weights_file_stops_the_suite_and_leaves_nothing(write_suite, cli, tmp_path, weights, message):
    path = tmp_path / "weights.safetensors"
    if weights is None:
        path.mkdir()
    else:
        path.write_text(weights)
    suite = write_suite(SUITE.replace("pretrained = false", f'file = "{path}"'))
    out = tmp_path / "out"
    one_line_error(cli("run", str(suite), "--out", str(out)), f"sources[0] (rn): file: '{path}'", message,
                   after_progress=True)
    assert not out.exists()
