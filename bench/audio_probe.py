"""Linear probe on a speech encoder: 5 seeds against 1 seed, through the feature cache.

    python bench/audio_probe.py [--seeds 5] [--threads 1] [--layer-weighting weighted]

A wav2vec 2.0 base-sized encoder (transformers' default configuration, randomly
initialised and saved with `save_pretrained`: nothing is downloaded) as an `hf` source,
probed on `spoken-digits` (400 clips by espeak-ng, 10 shots per word; needs espeak-ng).
Every run goes through tlbench's own worker (source build, splits, audio conditioning,
feature cache, probe, metrics) with a fresh cache: the first seed extracts the features
of every clip its splits hold, and the others read most of theirs from the cache, so
extra seeds should cost little more than the probe and the conditioning. Prints the
ratio of wall times (target ≤ 1.5×, as for images) and the cache hits per seed. With
``--layer-weighting weighted`` the source mixes its 13 hidden states (SUPERB): the probe
reads every layer's cached features and learns the mix before its closed-form head.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from linear_probe import timed_runs

SUITE = """
[suite]
name = "bench-audio-probe"
seeds = {seeds}

[[sources]]
id = "wav2vec2-base-random"
plugin = "hf"
model = "{model}"
layer_weighting = "{weighting}"

[[targets]]
id = "spoken-digits"
plugin = "spoken-digits"
shots = 10
val_shots = 5

[[strategies]]
id = "linear-probe"
plugin = "linear-probe"

[baseline]
enabled = false
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layer-weighting", default="last", choices=("last", "weighted"))
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench/audio_probe.py needs espeak-ng (apt-get install espeak-ng)")

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model_dir = folder / "wav2vec2-base-random"
        Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(model_dir)
        Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(model_dir)

        def suite(seeds: list[int]) -> Path:
            path = folder / f"suite-{len(seeds)}.toml"
            path.write_text(SUITE.format(seeds=seeds, model=model_dir, weighting=args.layer_weighting))
            return path

        timed_runs(registry, suite([0]), folder / "cache-warmup", args.threads)  # imports, espeak-ng, first calls
        one, _ = timed_runs(registry, suite([0]), folder / "cache-one", args.threads)
        many, records = timed_runs(registry, suite(list(range(args.seeds))), folder / "cache-many", args.threads)
    hits = [r["details"]["feature_cache"]["hits"] for r in records]
    misses = [r["details"]["feature_cache"]["misses"] for r in records]
    ratio = many / one
    print(f"# wav2vec 2.0 base-sized (random weights, layer_weighting {args.layer_weighting}), spoken-digits "
          f"400 clips, {args.threads} torch thread(s)")
    print(f"{ratio:.2f}x  (target <= 1.5x)  linear-probe wall time, {args.seeds} seeds / 1 seed "
          f"({many:.1f} s / {one:.1f} s; cache hits per seed {hits}, misses {misses})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
