"""Audio as a source takes it: decoded, resampled, mono, cropped or padded.

Targets give audio as they find it (`api.Waveform`s at any rate and channel count, or
files); a source declares what it takes (`api.AudioInput`: a rate, optionally a length).
Before a run hands a target's examples to an audio source, tlbench conditions every one
of them here, the same way for every source and strategy:

1. decode: files with soundfile (libsndfile: WAV, FLAC, OGG), as float32 in [-1, 1];
2. mix down to mono: the mean of the channels;
3. resample to the source's rate with soxr (the "HQ" quality preset; soxr is the resampler
   librosa and torchaudio offer as their high-quality one), so no home-made filter ever
   decides what a model hears;
4. crop (from the start, or around the centre) or zero-pad to the source's length, when it
   sets one.

What was done is counted and recorded in every run record (``details.source.audio``):
how many examples came at which rates and channel counts, how many were resampled,
mixed down, cropped or padded, and the versions of the libraries that did it. Plugins
use `read` and `condition` through this module, which imports numpy, soundfile and soxr
only when called.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .api import AudioInput, Waveform

RESAMPLER_QUALITY = "HQ"


def read(path: Path) -> Waveform:
    """An audio file as a `Waveform` of float32 samples, (channels, frames) or (frames,)."""
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    samples = samples.T
    return Waveform(samples[0] if samples.shape[0] == 1 else samples, int(rate))


def as_waveform(example: Any) -> Waveform:
    """A raw audio example (a `Waveform`, an audio file, or a (samples, rate) pair) as a `Waveform`."""
    import numpy as np

    if isinstance(example, Waveform):
        return example
    if isinstance(example, Path):
        return read(example)
    if isinstance(example, tuple) and len(example) == 2:
        return Waveform(np.asarray(example[0], dtype=np.float32), int(example[1]))
    raise TypeError(f"expected audio (a Waveform or an audio file as pathlib.Path), got {type(example).__name__}")


def _mono(samples):
    import numpy as np

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples, 1
    if samples.ndim != 2:
        raise ValueError(f"audio samples must be (frames,) or (channels, frames), got shape {samples.shape}")
    return samples.mean(axis=0, dtype=np.float32), samples.shape[0]


def _fit_length(samples, frames: int, crop: str):
    import numpy as np

    if len(samples) > frames:
        start = (len(samples) - frames) // 2 if crop == "center" else 0
        return samples[start:start + frames], "cropped"
    if len(samples) < frames:
        return np.pad(samples, (0, frames - len(samples))), "padded"
    return samples, None


class Conditioning:
    """Counts of what `condition` did, as the record states it."""

    def __init__(self, want: AudioInput):
        self.want = want
        self.rates: Counter = Counter()
        self.channels: Counter = Counter()
        self.done: Counter = Counter()
        self.seconds: list[float] = []

    def as_dict(self) -> dict:
        from importlib.metadata import version

        lengths = sorted(self.seconds)
        return {
            "takes": self.want.to_json() | {"channels": 1},
            "examples": sum(self.rates.values()),
            "input_rates": {str(rate): n for rate, n in sorted(self.rates.items())},
            "input_channels": {str(c): n for c, n in sorted(self.channels.items())},
            "resampled": self.done["resampled"], "mixed_down": self.done["mixed_down"],
            "cropped": self.done["cropped"], "padded": self.done["padded"],
            "input_seconds": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]}
            if lengths else None,
            "resampler": f"soxr {version('soxr')} ({RESAMPLER_QUALITY})",
            "decoder": f"soundfile {version('soundfile')}",
        }


def condition(examples: Sequence[Any], want: AudioInput, counts: Conditioning | None = None) -> list[Waveform]:
    """Every example as the source takes it: mono float32 at `want.rate`, of `want.seconds`
    when set; `counts` (if given) tallies what was done."""
    import soxr

    counts = counts if counts is not None else Conditioning(want)
    frames = round(want.seconds * want.rate) if want.seconds else None
    out = []
    for example in examples:
        wave = as_waveform(example)
        samples, channels = _mono(wave.samples)
        counts.rates[int(wave.rate)] += 1
        counts.channels[channels] += 1
        counts.seconds.append(round(len(samples) / wave.rate, 4))
        if channels > 1:
            counts.done["mixed_down"] += 1
        if int(wave.rate) != want.rate:
            samples = soxr.resample(samples, wave.rate, want.rate, quality=RESAMPLER_QUALITY).astype("float32")
            counts.done["resampled"] += 1
        if frames is not None:
            samples, what = _fit_length(samples, frames, want.crop)
            if what:
                counts.done[what] += 1
        out.append(Waveform(samples, want.rate))
    return out


def condition_splits(splits, want: AudioInput):
    """The splits (`api.Splits`) with every split's examples conditioned, labels untouched,
    and the record of what was done."""
    from dataclasses import replace

    counts = Conditioning(want)
    conditioned = type(splits)(**{name: replace(split, examples=condition(split.examples, want, counts))
                                  for name, split in splits.items()})
    return conditioned, counts.as_dict()
