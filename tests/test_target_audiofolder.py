"""The `audiofolder` target (class folders of .wav/.flac/.ogg files), the dry run's
reading of audio headers, and the conformance kit's checks of audio examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlbench.api import AudioInput, Env, Split, Splits, Waveform
from tlbench.errors import ResourceUnavailable
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params
from tlbench.testing import check_target


def make_audio(root: Path, counts: dict[str, int], rate: int = 8000, channels: int = 2, suffix: str = ".wav",
               subtype: str = "PCM_16", seconds: float = 0.25, seed: int = 0) -> None:
    """`counts[name]` files of noisy tones under root/<name>/, each different."""
    import soundfile

    rng = np.random.default_rng(seed)
    frames = int(rate * seconds)
    t = np.arange(frames) / rate
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 1200) * t)
            samples = np.stack([tone + 0.05 * rng.standard_normal(frames) for _ in range(channels)], axis=1)
            soundfile.write(str(root / name / f"clip{i:02d}{suffix}"), samples.astype(np.float32), rate,
                            subtype=subtype)


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def load(env, **given):
    from tlbench_builtin.audiofolder import AudioFolder

    item = AudioFolder()
    params = resolve_params(item.params, given, "test")
    item.check(params, env)
    return item.load(params, env)


def test_a_folder_of_8khz_stereo_16bit_wavs_conforms_and_is_conditioned_to_16khz_mono(tmp_path, cache_dir):
    import soundfile

    from tlbench.audio import condition_splits

    make_audio(tmp_path / "calls", {"owl": 8, "crow": 8, "wren": 7})
    assert soundfile.info(str(tmp_path / "calls" / "owl" / "clip00.wav")).channels == 2
    data = check_target("audiofolder", {"path": str(tmp_path / "calls"), "shots": 2}, cache_dir=cache_dir)
    assert data.modality == "audio" and data.class_names == ["crow", "owl", "wren"]
    splits = data.splits(0)
    assert np.bincount(splits.train.labels).tolist() == [2, 2, 2]
    for _, split in splits.items():
        assert all(isinstance(example, Path) for example in split.examples)
        assert [data.class_names.index(p.parent.name) for p in split.examples] == split.labels.tolist()
    assert data.revision.startswith("listing-sha256:")
    # what a run does before a 16 kHz mono source sees them, and records
    conditioned, record = condition_splits(splits, AudioInput(rate=16000))
    example = conditioned.train.examples[0]
    assert example.rate == 16000 and example.samples.ndim == 1 and len(example.samples) == 4000
    total = sum(len(split) for _, split in splits.items())
    assert record["input_rates"] == {"8000": total} and record["input_channels"] == {"2": total}
    assert record["resampled"] == total and record["mixed_down"] == total


def test_flac_and_ogg_count_other_files_do_not_and_split_folders_are_used(tmp_path, env):
    root = tmp_path / "data"
    make_audio(root / "train", {"yes": 6, "no": 6}, suffix=".flac", channels=1, subtype="PCM_24", rate=16000)
    make_audio(root / "train", {"yes": 2}, suffix=".ogg", channels=1, subtype="VORBIS", rate=16000, seed=1)
    make_audio(root / "test", {"yes": 3, "no": 3}, seed=2)
    (root / "train" / "no" / "notes.txt").write_text("not audio")
    (root / "train" / "no" / "cover.png").write_bytes(b"\x89PNG")
    data = load(env, path=str(root), shots=2, val_shots=1)
    assert data.origins == {"train": "train", "test": "test"}
    assert sorted(p.suffix for p in data.files["train"]) == [".flac"] * 12 + [".ogg"] * 2
    zero, one = data.splits(0), data.splits(1)
    assert zero.test.examples == one.test.examples and len(zero.test) == 6
    assert splits_content_hash(zero)[0] != splits_content_hash(one)[0]


def test_a_folder_without_audio_is_one_line(tmp_path, env):
    make_audio(tmp_path / "data", {"a": 2})
    (tmp_path / "data" / "b").mkdir()
    for file in (tmp_path / "data" / "a").iterdir():
        file.rename(file.with_suffix(".mp4"))
    with pytest.raises(ResourceUnavailable, match=r"holds no audio files \(\.flac, \.ogg, \.wav\)"):
        load(env, path=str(tmp_path / "data"))
    with pytest.raises(ResourceUnavailable, match="point path at a local directory of audio files"):
        load(env, path=str(tmp_path / "missing"))


def test_the_dry_run_reads_the_headers_of_the_drawn_audio_files(tmp_path, env):
    from tlbench.plan.checks import check_images

    make_audio(tmp_path / "data", {"a": 6, "b": 6})
    data = load(env, path=str(tmp_path / "data"), shots=2)
    by_seed = {seed: data.splits(seed) for seed in (0, 1)}
    check_images("suite.toml: targets[0] (calls)", "audio", by_seed)
    broken = sorted((tmp_path / "data" / "b").iterdir())
    broken[0].write_bytes(b"RIFF and then nothing a WAV needs")
    broken[1].write_bytes(b"")
    with pytest.raises(ResourceUnavailable) as caught:
        check_images("suite.toml: targets[0] (calls)", "audio", by_seed)
    message = str(caught.value)
    assert message.startswith(f"suite.toml: targets[0] (calls): audio file {broken[0]} cannot be read: ")
    assert message.endswith("(and 1 more of the audio files the seeds' splits use)") and "\n" not in message


# ---------------------------------------------------------------------- the kit on audio


def changed(change):
    """An audiofolder whose examples pass through `change` (a broken or an other-form target)."""
    from tlbench_builtin.audiofolder import AudioFolder

    class Changed(AudioFolder):
        name = "audio-variant"

        def load(self, params, env):
            data = super().load(params, env)
            splits = data.splits
            data.splits = lambda seed: Splits(**{name: Split([change(e) for e in split.examples], split.labels)
                                                 for name, split in splits(seed).items()})
            return data

    return Changed()


def as_waveform(path: Path) -> Waveform:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return Waveform(np.ascontiguousarray(samples.T), rate)


@pytest.mark.parametrize("change, message", [
    (str, r"gives an audio file as a str \('.*\.wav'\); give audio files as pathlib\.Path"),
    (lambda p: Waveform(np.full(8, np.nan, np.float32), 8000), "Waveform.samples must be non-empty and finite"),
    (lambda p: Waveform((as_waveform(p).samples * 32767).astype(np.int16), 8000),
     r"must be a float array of \(frames,\) or \(channels, frames\), got int16 samples"),
    (lambda p: Waveform(as_waveform(p).samples[None], 8000), r"got float32 samples of shape \(1, 2, 2000\)"),
    (lambda p: Waveform(as_waveform(p).samples, 0), "Waveform.rate must be a positive int"),
    (lambda p: p.read_bytes(), "is a bytes; audio examples are tlbench.api.Waveform"),
], ids=["str", "nan", "int16", "3-d", "rate", "bytes"])
def test_the_kit_refuses_audio_examples_that_are_not_waveforms_or_files(tmp_path, change, message):
    make_audio(tmp_path / "data", {"a": 6, "b": 6})
    with pytest.raises(AssertionError, match=message) as caught:
        check_target(changed(change), {"path": str(tmp_path / "data"), "shots": 2})
    assert str(caught.value).startswith("target 'audio-variant'")


def test_the_kit_passes_waveforms_and_refuses_an_unreadable_file(tmp_path):
    make_audio(tmp_path / "data", {"a": 6, "b": 6})
    data = check_target(changed(as_waveform), {"path": str(tmp_path / "data"), "shots": 2})
    assert isinstance(data.splits(0).train.examples[0], Waveform)
    for file in (tmp_path / "data" / "a").iterdir():
        file.write_bytes(b"not audio " + file.name.encode())
    with pytest.raises(AssertionError, match="soundfile cannot read"):
        check_target("audiofolder", {"path": str(tmp_path / "data"), "shots": 2})
