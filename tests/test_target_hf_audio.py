"""The `hf-dataset` target with an Audio column, on local parquet files made here: the
audio is decoded by soundfile into Waveforms (datasets' own decoding needs torchcodec)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tlbench.api import Env, Waveform
from tlbench.errors import ResourceUnavailable
from tlbench.params import resolve_params
from tlbench.testing import check_target

WORDS = ["go", "stop", "left"]


def wav_bytes(rng, rate: int, channels: int, seconds: float = 0.2) -> bytes:
    import soundfile

    frames = int(rate * seconds)
    samples = 0.2 * rng.standard_normal((frames, channels)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def audio_parquet(tmp_path_factory):
    """train.parquet (3 words x 8 clips, 8 kHz stereo) and test.parquet (3 x 3, 16 kHz
    mono), the WAV bytes embedded as the hub's parquet files embed them, and a text column."""
    from datasets import Audio, ClassLabel, Dataset

    folder = tmp_path_factory.mktemp("audio-parquet")
    rng = np.random.default_rng(0)
    for split, per_class, rate, channels in (("train", 8, 8000, 2), ("test", 3, 16000, 1)):
        labels = [i % 3 for i in range(3 * per_class)]
        data = Dataset.from_dict({
            "clip": [{"bytes": wav_bytes(rng, rate, channels), "path": f"{split}-{i}.wav"} for i in range(len(labels))],
            "word": labels, "sentence": [f"{split} {i}" for i in range(len(labels))]})
        # cast rather than encode: encoding an Audio feature needs torchcodec, casting does not
        data = data.cast_column("clip", Audio()).cast_column("word", ClassLabel(names=WORDS))
        data.to_parquet(str(folder / f"{split}.parquet"))
    return folder


def test_an_audio_column_gives_waveforms_and_conforms(audio_parquet, cache_dir):
    import soundfile

    data = check_target("hf-dataset", {"path": str(audio_parquet), "format": "parquet", "shots": 2},
                        cache_dir=cache_dir)
    assert data.modality == "audio" and data.column == "clip" and data.class_names == WORDS
    splits = data.splits(0)
    train, test = splits.train.examples, splits.test.examples
    assert len(train) == 6 and len(test) == 9
    assert all(isinstance(example, Waveform) for example in train + test)
    assert {(w.rate, w.samples.shape, w.samples.dtype) for w in train} == {(8000, (2, 1600), np.dtype("float32"))}
    assert {(w.rate, w.samples.shape) for w in test} == {(16000, (3200,))}
    # the samples are the stored WAV's, as soundfile decodes it
    from datasets import Audio, load_dataset

    rows = load_dataset("parquet", data_files={"test": str(audio_parquet / "test.parquet")},
                        cache_dir=str(cache_dir / "datasets"))["test"].cast_column("clip", Audio(decode=False))
    expected, rate = soundfile.read(io.BytesIO(rows[0]["clip"]["bytes"]), dtype="float32")
    assert rate == 16000 and np.array_equal(test[0].samples, expected)


def test_the_audio_column_is_found_before_a_text_column_or_named(audio_parquet, cache_dir):
    from tlbench_builtin.hf_dataset import HFDataset

    item = HFDataset()
    env = Env(cache_dir=cache_dir)
    base = {"path": str(audio_parquet), "format": "parquet", "shots": 2}
    assert item.load(resolve_params(item.params, base, "test"), env).modality == "audio"
    text = item.load(resolve_params(item.params, {**base, "input_column": "sentence"}, "test"), env)
    assert text.modality == "text" and isinstance(text.splits(0).train.examples[0], str)


def test_an_audio_cell_is_decoded_from_its_bytes_or_its_file_and_else_refused_in_one_line(tmp_path):
    import soundfile

    from tlbench_builtin.hf_dataset import decoded_audio

    data = wav_bytes(np.random.default_rng(1), 8000, 2)
    (tmp_path / "clip.wav").write_bytes(data)
    from_bytes = decoded_audio({"bytes": data, "path": "clip.wav"})
    from_file = decoded_audio({"bytes": None, "path": str(tmp_path / "clip.wav")})
    assert from_bytes.rate == from_file.rate == 8000
    assert np.array_equal(from_bytes.samples, from_file.samples)
    assert from_bytes.samples.flags.c_contiguous
    assert np.array_equal(from_bytes.samples, soundfile.read(tmp_path / "clip.wav", dtype="float32")[0].T)
    with pytest.raises(ResourceUnavailable, match=r"^an audio cell \('x\.wav'\) cannot be decoded by soundfile: "):
        decoded_audio({"bytes": b"not a wav", "path": "x.wav"})
    with pytest.raises(ResourceUnavailable, match="neither bytes nor a readable file"):
        decoded_audio({"bytes": None, "path": str(tmp_path / "gone.wav")})
