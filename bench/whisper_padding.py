"""Whisper's 30-second input: what padding a short clip costs its encoder.

    python bench/whisper_padding.py [--repeats 7] [--threads 1]

Whisper's encoder takes exactly 30 seconds of log-mel frames, so the `hf` source pads
every clip to 30 s (the record says so: ``details.source.audio.padded``). This times one
forward pass of a randomly initialised encoder on 30 s against the same encoder built
for 1-second inputs (``max_source_positions`` 50 instead of 1500): the padding's cost for
a 1-second keyword. Two sizes: the tests' tiny config and whisper-tiny's dimensions
(d_model 384, 4 layers, 6 heads, 80 mel bins), both from configs, nothing downloaded.
Prints the median milliseconds and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

SIZES = {
    "tests' tiny config (d_model 32, 2 layers, 16 mels)":
        dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=16),
    "whisper-tiny's dimensions (d_model 384, 4 layers, 80 mels)":
        dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536, num_mel_bins=80),
}


def forward_ms(dims: dict, seconds: int, repeats: int) -> float:
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    encoder = WhisperEncoder(WhisperConfig(max_source_positions=50 * seconds, **dims)).eval()
    frames = torch.randn(1, dims["num_mel_bins"], 100 * seconds)
    times = []
    with torch.no_grad():
        encoder(frames)
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(frames)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    import torch
    from transformers.utils import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    for name, dims in SIZES.items():
        short, padded = forward_ms(dims, 1, args.repeats * 3), forward_ms(dims, 30, args.repeats)
        print(f"{name}: 1 s {short:.1f} ms, 30 s padded {padded:.1f} ms: {padded / short:.0f}x")


if __name__ == "__main__":
    main()
