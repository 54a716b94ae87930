"""Audio conditioning: what tlbench does to a target's audio before a source sees it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlbench.api import AudioInput, Split, Splits, Waveform
from tlbench.audio import condition, condition_splits, read
from tlbench.hashing import example_digest


def stereo_wav(path: Path, rate: int = 8000, seconds: float = 0.5, hz: float = 440.0) -> Path:
    """A 16-bit stereo WAV: a sine on the left, silence on the right."""
    import soundfile

    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * hz * t)
    soundfile.write(str(path), np.stack([left, np.zeros_like(left)], axis=1), rate, subtype="PCM_16")
    return path


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_an_8khz_stereo_file_becomes_16khz_mono_with_the_same_pitch(tmp_path):
    path = stereo_wav(tmp_path / "a.wav")
    raw = read(path)
    assert raw.rate == 8000 and raw.samples.shape == (2, 4000) and raw.samples.dtype == np.float32
    (wave,) = condition([path], AudioInput(16000))
    assert wave.rate == 16000 and wave.samples.ndim == 1 and len(wave.samples) == 8000
    assert peak_hz(wave.samples, 16000) == pytest.approx(440, abs=2)
    assert np.abs(wave.samples).max() == pytest.approx(0.25, abs=0.01)  # the mean of a sine and silence


def test_crop_and_pad_to_the_sources_length():
    rate = 16000
    long, short = Waveform(np.ones(rate * 2, np.float32), rate), Waveform(np.ones(rate // 2, np.float32), rate)
    start, padded = condition([long, short], AudioInput(rate, seconds=1.0))
    assert len(start.samples) == len(padded.samples) == rate
    assert padded.samples[: rate // 2].min() == 1 and padded.samples[rate // 2:].max() == 0
    ramp = Waveform(np.arange(3 * rate, dtype=np.float32), rate)
    (centre,) = condition([ramp], AudioInput(rate, seconds=1.0, crop="center"))
    assert centre.samples[0] == rate


def test_the_record_states_what_was_done(tmp_path):
    paths = [stereo_wav(tmp_path / f"{i}.wav") for i in range(3)]
    mono16 = Waveform(np.zeros(16000, np.float32), 16000)
    splits = Splits(Split(paths[:2], [0, 1]), Split([paths[2]], [0]), Split([mono16], None))
    conditioned, done = condition_splits(splits, AudioInput(16000, seconds=1.0))
    assert conditioned.train.labels == [0, 1] and conditioned.test.labels is None
    assert all(w.rate == 16000 and len(w.samples) == 16000 for _, s in conditioned.items() for w in s.examples)
    assert done["input_rates"] == {"8000": 3, "16000": 1} and done["input_channels"] == {"1": 1, "2": 3}
    assert (done["resampled"], done["mixed_down"], done["padded"], done["cropped"]) == (3, 3, 3, 0)
    assert done["takes"] == {"rate": 16000, "seconds": 1.0, "crop": "start", "channels": 1}
    assert done["resampler"].startswith("soxr ") and done["decoder"].startswith("soundfile ")


def test_a_waveform_is_hashed_by_its_samples_and_its_rate():
    samples = np.linspace(-1, 1, 100, dtype=np.float32)
    assert example_digest(Waveform(samples, 16000)) == example_digest(Waveform(samples.copy(), 16000))
    assert example_digest(Waveform(samples, 16000)) != example_digest(Waveform(samples, 8000))
    assert example_digest(Waveform(samples, 16000)) != example_digest(samples)


def test_anything_else_is_refused_in_one_line():
    with pytest.raises(TypeError, match="expected audio"):
        condition(["not audio"], AudioInput(16000))
