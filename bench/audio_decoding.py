"""Audio conditioning against the model's forward pass, per example, on the CPU.

    python bench/audio_decoding.py [--examples 64] [--seconds 1.0] [--threads 1]

Writes `--examples` one-second 8 kHz stereo 16-bit WAV files (a speech-like mix of
tones and noise), then times, side by side on the same files:

1. what tlbench does to every audio example before a source sees it
   (`tlbench.audio.condition`: decode with soundfile, mix down, resample to 16 kHz with
   soxr, pad or crop to `--seconds`);
2. the forward pass of a wav2vec 2.0 base-sized encoder (transformers'
   `Wav2Vec2Model` with its default configuration: 95 M parameters, randomly
   initialised, so nothing is downloaded) on the conditioned batch, in batches of 8.

Prints milliseconds per example for both and their ratio (conditioning / forward); the
target is that conditioning stays a small fraction of the forward pass (≤ 0.1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 0.10


def write_files(folder: Path, n: int, seconds: float) -> list[Path]:
    import soundfile

    rng = np.random.default_rng(0)
    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    paths = []
    for i in range(n):
        tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(120, 900, 3)) / 4
        left = tones + 0.05 * rng.normal(size=len(t))
        right = 0.8 * left + 0.02 * rng.normal(size=len(t))
        path = folder / f"{i:04d}.wav"
        soundfile.write(str(path), np.stack([left, right], axis=1).clip(-1, 1), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from tlbench.api import AudioInput
    from tlbench.audio import condition

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config()).eval()
    want = AudioInput(16000, seconds=args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.examples, args.seconds)
        condition(paths[:2], want)  # imports and first-call costs out of the timing
        conditioning, forward = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            waves = condition(paths, want)
            conditioning.append(time.perf_counter() - start)
            batch = torch.from_numpy(np.stack([w.samples for w in waves]))
            start = time.perf_counter()
            with torch.inference_mode():
                for first in range(0, len(batch), 8):
                    model(batch[first:first + 8])
            forward.append(time.perf_counter() - start)
    per_conditioning = statistics.median(conditioning) / args.examples * 1000
    per_forward = statistics.median(forward) / args.examples * 1000
    ratio = per_conditioning / per_forward
    print(f"# {args.examples} × {args.seconds:g} s, 8 kHz stereo WAV → 16 kHz mono; {args.threads} torch thread(s); "
          f"median of {args.repeats}")
    print(f"{per_conditioning:.2f} ms/example  conditioning (soundfile decode, mix-down, soxr resample, pad/crop)")
    print(f"{per_forward:.2f} ms/example  wav2vec 2.0 base-sized forward pass, batches of 8")
    print(f"{ratio:.3f}  conditioning / forward (target ≤ {TARGET:.2f}) {'ok' if ratio <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
