"""The `spoken-digits` target: words spoken by espeak-ng, generated once into the cache.

The tests that speak need espeak-ng (Debian's `espeak-ng`): without it they are skipped
locally and fail under CI (`CI` set), where .ci/run installs it. The parameter checks and
the one-line refusal without espeak-ng run everywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import RANDOM_RESNET
from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params

SMALL = {"voices": ["en+m1", "en-us+f3"], "per_voice": 3, "shots": 2, "val_shots": 1}
"""Two voices, three utterances of each word by each: 60 files, under a second to speak."""


@pytest.fixture(scope="module")
def espeak():
    path = shutil.which("espeak-ng")
    if path is None:
        message = "espeak-ng is not installed (apt-get install espeak-ng)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the spoken-digits tests")
        pytest.skip(message)
    return path


def load(cache: Path, **given):
    from tlbench_builtin.spoken_digits import SpokenDigits

    item = SpokenDigits()
    params = resolve_params(item.params, given, "test")
    return item.load(params, Env(cache_dir=cache, log=lambda line: None))


def test_the_conformance_kit_passes_it(espeak, cache_dir):
    from tlbench.testing import check_target

    data = check_target("spoken-digits", {**SMALL, "classes": [3, 7, 0]}, cache_dir=cache_dir)
    assert data.modality == "audio" and data.class_names == ["three", "seven", "zero"]
    assert data.revision.startswith("espeak-ng-") and ";sha256:" in data.revision
    splits = data.splits(0)
    assert [len(split) for _, split in splits.items()] == [6, 3, 9]  # 6 utterances per class: 2 + 1 + 3
    for _, split in splits.items():
        assert all(isinstance(example, Path) and example.suffix == ".wav" for example in split.examples)
        words = [example.name.split("-")[0] for example in split.examples]
        assert words == [data.class_names[label] for label in split.labels]
    assert splits_content_hash(splits)[0] != splits_content_hash(data.splits(1))[0]


def test_the_same_parameters_give_byte_identical_files(espeak, tmp_path):
    import soundfile

    first, second = load(tmp_path / "a", **SMALL), load(tmp_path / "b", **SMALL)
    assert first.revision == second.revision
    assert [f.read_bytes() for f in first.files] == [f.read_bytes() for f in second.files]
    folder = first.files[0].parents[1]
    assert folder.parent == tmp_path / "a" / "spoken-digits"
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no temporary folder left
    assert sorted(p.name for p in folder.iterdir()) == ["en+m1", "en-us+f3", "manifest.json"]
    info = soundfile.info(str(first.files[0]))
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    # loading again reads the cache: nothing is spoken twice
    stamp = {f: f.stat().st_mtime_ns for f in first.files}
    assert {f: f.stat().st_mtime_ns for f in load(tmp_path / "a", **SMALL).files} == stamp
    # no two utterances are the same file (splits would overlap)
    assert len({f.read_bytes() for f in first.files}) == len(first.files)


def test_a_voice_speaks_the_same_whatever_the_other_voices_and_the_seed_changes_it(espeak, tmp_path):
    both = load(tmp_path, **SMALL)
    alone = load(tmp_path, **{**SMALL, "voices": ["en+m1"], "shots": 1, "val_shots": 1})
    by_name = {f.relative_to(f.parents[1]): f.read_bytes() for f in both.files}
    assert all(by_name[f.relative_to(f.parents[1])] == f.read_bytes() for f in alone.files)
    reseeded = load(tmp_path, **{**SMALL, "speech_seed": 1})
    assert reseeded.revision != both.revision


def test_another_rate_is_resampled_when_written(espeak, tmp_path):
    import soundfile

    data = load(tmp_path, **{**SMALL, "rate": 8000})
    info = soundfile.info(str(data.files[0]))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert data.revision != load(tmp_path, **SMALL).revision


def test_test_shots_caps_the_test_split(espeak, tmp_path):
    data = load(tmp_path, **SMALL, test_shots=2)
    splits = data.splits(0)
    assert np.bincount(splits.test.labels).tolist() == [2] * 10
    assert np.bincount(splits.train.labels).tolist() == [2] * 10


@pytest.mark.parametrize("given, message", [
    ({"voices": ["en+m1", "en+zz"]}, "voices: unknown voice 'en+zz'"),
    ({"voices": []}, "voices: got []"),
    ({"classes": [3]}, "classes: expected at least two distinct digits"),
    ({"voices": ["en+m1"], "per_voice": 4, "shots": 3, "val_shots": 1}, "leave no test utterances of the 4 per class"),
])
def test_parameters_are_checked_before_anything_is_spoken(tmp_path, given, message):
    from tlbench_builtin.spoken_digits import SpokenDigits

    item = SpokenDigits()
    with pytest.raises(ParamError, match=message.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        item.check(resolve_params(item.params, given, "test"), Env(cache_dir=tmp_path))


def test_without_espeak_ng_the_target_says_how_to_install_it(tmp_path, monkeypatch):
    from tlbench_builtin.spoken_digits import SpokenDigits

    monkeypatch.setenv("PATH", str(tmp_path))
    item = SpokenDigits()
    with pytest.raises(ResourceUnavailable) as caught:
        item.check(resolve_params(item.params, {}, "test"), Env(cache_dir=tmp_path))
    assert str(caught.value) == "espeak-ng is not installed; spoken-digits speaks its words with it: " \
                               "apt-get install espeak-ng"
    assert caught.value.exit_code == 2


def test_a_suite_without_espeak_ng_stops_with_one_line_and_exit_code_2(write_suite, cli, tmp_path):
    suite = write_suite('[suite]\nname = "words"\nseeds = [0]\n' + RANDOM_RESNET + """
        [[targets]]
        id = "words"
        plugin = "spoken-digits"

        [[strategies]]
        id = "lp"
        plugin = "linear-probe"
        """.replace("\n        ", "\n"))
    empty = tmp_path / "no-programs"
    empty.mkdir()
    result = cli("run", str(suite), "--dry-run", env={"PATH": str(empty)})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tlbench: error:")]
    assert lines == [f"tlbench: error: {suite}: targets[0] (words): espeak-ng is not installed; spoken-digits "
                     f"speaks its words with it: apt-get install espeak-ng"], result.stderr
    assert "Traceback" not in result.stderr
