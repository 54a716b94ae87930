"""Source `spectrogram`: any timm image model on log-mel spectrograms (ImageNet → audio).

The cross-modal route: every clip (tlbench has made it mono at `rate` and `seconds`
long, `SourceModel.audio`) becomes a log-mel spectrogram drawn as an image, and a timm
model reads it as it reads a photograph. The weights come exactly as for the `timm`
source, whose code this source is (a subclass): hub weights through the HF cache, a
local weights file, a ``local-dir:`` folder, or a random initialisation.

The image: transformers' `audio_utils` (a Hann window of `n_fft` samples every `hop`
samples, the power spectrum through a Slaney-style mel filter bank of `n_mels` filters
from 0 Hz to half the rate, in dB), scaled to [0, 1] over the 80 dB below the clip's own
peak (librosa's ``top_db``), low frequencies at the bottom, resized (bilinear) to the
model's input size, repeated to three channels and normalised with the mean and
standard deviation of the model's data config, as its images were.

From-scratch baselines: `network` stays None. A random `spectrogram` source is exactly
the network `timm.create_model` builds, but its baseline trains that network on these
spectrograms, whose settings are part of its architecture; the "timm" namespace compares
networks by {model, input_size} alone, so sharing it would pair a baseline with a source
of other inputs. Spectrogram sources of equal settings share their baseline.
"""

from __future__ import annotations

from typing import Any, Sequence

import tlbench
from tlbench.api import AudioInput, Env, SourceCapabilities, SourceModel
from tlbench.errors import ParamError
from tlbench.params import Param

from .hf_extra import require_hf_extra
from .timm_source import TimmSource, timm_architecture

TOP_DB = 80.0
"""The dynamic range an image shows, below each clip's peak."""

SPECTROGRAM_PARAMS = {
    "rate": Param(int, 16000, "sampling rate the clips are resampled to (Hz)", min=1000),
    "seconds": Param(float, 1.0, "every clip is cropped or zero-padded to this length", min=0.01),
    "n_mels": Param(int, 64, "mel filters: the image's rows before resizing", min=8),
    "hop": Param(int, 160, "samples between frames: the image's columns are seconds × rate / hop + 1", min=1),
    "n_fft": Param(int, 400, "window and FFT length in samples", min=16),
}


class SpectrogramSource(TimmSource):
    name = "spectrogram"
    version = "1"
    description = "timm image models on log-mel spectrograms of audio (ImageNet → audio), weights as for timm"
    network = None
    params = {**TimmSource.params, **SPECTROGRAM_PARAMS}

    def architecture(self, params: dict) -> dict:
        return {**timm_architecture(params["model"], params["input_size"]),
                "spectrogram": {key: params[key] for key in SPECTROGRAM_PARAMS}}

    def capabilities(self, params: dict) -> SourceCapabilities:
        image = super().capabilities(params)
        return SourceCapabilities(modality="audio", representations=image.representations,
                                  source_head=image.source_head)

    def check(self, params: dict, env: Env) -> None:
        require_hf_extra("source 'spectrogram'", "transformers")
        if params["hop"] > params["n_fft"]:
            raise ParamError(f"hop: {params['hop']} samples is longer than the window (n_fft = {params['n_fft']}); "
                             f"frames would skip audio")
        if params["n_mels"] > params["n_fft"] // 2 + 1:
            raise ParamError(f"n_mels: {params['n_mels']} mel filters over {params['n_fft'] // 2 + 1} frequency "
                             f"bins leaves some empty; lower n_mels or raise n_fft")
        if params["seconds"] * params["rate"] < params["n_fft"]:
            raise ParamError(f"seconds: {params['seconds']} s is shorter than one window of n_fft = "
                             f"{params['n_fft']} samples")
        super().check(params, env)

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        import dataclasses
        import json

        image = super().build(params, env, pretrained)
        encoder = SpectrogramEncoder(**{key: params[key] for key in SPECTROGRAM_PARAMS},
                                     size=tuple(image.meta["data_config"]["input_size"][1:]),
                                     mean=image.meta["data_config"]["mean"], std=image.meta["data_config"]["std"])
        identity = encoder.identity()
        return dataclasses.replace(image, modality="audio", encode=encoder, encode_whole=None,
                                   preprocessing_id=json.dumps(identity, sort_keys=True),
                                   audio=AudioInput(params["rate"], params["seconds"]),
                                   meta={**image.meta, "spectrogram": identity})


class SpectrogramEncoder:
    """Mono clips at `rate` to (batch, 3, height, width) log-mel images (plain data, picklable)."""

    def __init__(self, rate: int, seconds: float, n_mels: int, hop: int, n_fft: int, size: tuple,
                 mean: Sequence[float], std: Sequence[float]):
        from transformers.audio_utils import mel_filter_bank, window_function

        self.rate, self.seconds, self.n_mels, self.hop, self.n_fft = rate, seconds, n_mels, hop, n_fft
        self.size, self.mean, self.std = tuple(int(s) for s in size), list(mean), list(std)
        self.window = window_function(n_fft, "hann")
        self.filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                                       max_frequency=rate / 2, sampling_rate=rate, norm="slaney", mel_scale="slaney")

    def identity(self) -> dict:
        return {"rate": self.rate, "seconds": self.seconds, "n_mels": self.n_mels, "hop": self.hop,
                "n_fft": self.n_fft, "window": "hann", "mel": "slaney", "top_db": TOP_DB, "size": list(self.size),
                "mean": self.mean, "std": self.std}

    def image(self, samples) -> Any:
        """One clip's log-mel spectrogram in [0, 1], (n_mels, frames), low frequencies last."""
        import numpy as np
        from transformers.audio_utils import spectrogram

        db = spectrogram(np.asarray(samples, dtype=np.float32), self.window, frame_length=self.n_fft,
                         hop_length=self.hop, power=2.0, mel_filters=self.filters, log_mel="dB", db_range=TOP_DB)
        return ((db - db.max()) / TOP_DB + 1.0)[::-1].astype(np.float32)

    def __call__(self, examples: Sequence[Any]):
        import numpy as np
        import torch
        import torch.nn.functional as F

        from tlbench.api import Waveform

        images = []
        for example in examples:
            if isinstance(example, Waveform):
                if int(example.rate) != self.rate:
                    raise ValueError(f"audio at {example.rate} Hz given to a source that takes {self.rate} Hz")
                example = example.samples
            images.append(self.image(example))
        batch = torch.cat([F.interpolate(torch.from_numpy(np.ascontiguousarray(image))[None, None], size=self.size,
                                         mode="bilinear", align_corners=False) for image in images])
        batch = batch.repeat(1, 3, 1, 1)
        mean, std = torch.tensor(self.mean).view(1, 3, 1, 1), torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(SpectrogramSource())
