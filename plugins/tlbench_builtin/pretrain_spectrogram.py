"""Source `pretrain-spectrogram`: a timm image model on log-mel spectrograms, trained here.

The image route to audio, pretrained offline the way `pretrain-speech` pretrains a speech
encoder: a timm architecture reads every clip as the `spectrogram` source draws it (the
same log-mel image, size and normalisation) and is trained as a classifier on a target
plugin's audio. Side by side with `pretrain-speech` on the same pretraining voices, it
asks whether a convolutional network on spectrograms transfers to new voices as well as
a speech transformer does; with real ImageNet weights, the `spectrogram` source asks the
"ImageNet → audio spectrograms" question (suites/audio.toml).

Everything a pretrained-here source shares comes from `pretraining.PretrainedHere`. The
weights (with the classifier) are saved as safetensors under ``<cache>/pretrain/`` and
built through the `spectrogram` source from that file, so the source a run sees is
exactly a `spectrogram` source with local weights.
"""

from __future__ import annotations

from pathlib import Path

import tlbench
from tlbench.api import Env, SourceCapabilities, SourceModel
from tlbench.errors import ParamError
from tlbench.params import Param

from .pretraining import RECIPE_PARAMS, PretrainedHere, read_weights_meta, save_weights
from .spectrogram_source import SPECTROGRAM_PARAMS, SpectrogramEncoder, SpectrogramSource


class PretrainSpectrogram(PretrainedHere):
    name = "pretrain-spectrogram"
    version = "1"
    description = "a timm architecture on log-mel spectrograms, pretrained here on a target plugin's audio"
    params = {
        "model": Param(str, help="timm architecture, e.g. resnet18"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
        **SPECTROGRAM_PARAMS,
        **RECIPE_PARAMS,
    }

    def _spectrogram_params(self, params: dict, file: Path | None) -> dict:
        """The `spectrogram` source's parameters that build this source."""
        return {"model": params["model"], "pretrained": file is not None, "file": str(file) if file else None,
                "input_size": params["input_size"], **{key: params[key] for key in SPECTROGRAM_PARAMS}}

    def architecture(self, params: dict) -> dict:
        return SpectrogramSource().architecture(self._spectrogram_params(params, None))

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SpectrogramSource().capabilities(self._spectrogram_params(params, None))

    def check(self, params: dict, env: Env) -> None:
        from .timm_names import is_known

        if not is_known(params["model"], env.cache_dir):
            raise ParamError(f"model: timm has no architecture {params['model']!r}")
        SpectrogramSource().check(self._spectrogram_params(params, None), env)
        super().check(params, env)

    # ------------------------------------------------------------------ training

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        from tlbench.api import AudioInput, Split
        from tlbench.audio import condition
        from tlbench.training import seed_everything

        from .timm_models import create, data_config

        seed_everything(seed)
        takes = AudioInput(params["rate"], params["seconds"])
        train = Split(examples=condition(train.examples, takes), labels=train.labels)
        val = Split(examples=condition(val.examples, takes), labels=val.labels)
        model = create(params["model"], pretrained=False, input_size=params["input_size"],
                       num_classes=data.num_classes)
        config = data_config(model, params["input_size"])
        encoder = SpectrogramEncoder(**{key: params[key] for key in SPECTROGRAM_PARAMS},
                                     size=tuple(config["input_size"][1:]), mean=config["mean"], std=config["std"])
        reached = self._fit(model, encoder, params, env, data, train, val, seed)
        save_weights(model, weights, {"num_classes": data.num_classes, **reached})

    # ------------------------------------------------------------------ building

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        spectrogram = SpectrogramSource()
        if not pretrained:
            return spectrogram.build(self._spectrogram_params(params, None), env, pretrained=False)
        _, _, _, key, _ = self._data(params, env)
        weights = self._weights(env, key)
        if not weights.exists():
            self.prepare(params, env)
        source = spectrogram.build(self._spectrogram_params(params, weights), env, pretrained=True)
        trained = read_weights_meta(weights)
        source.meta["pretraining"] = {k: trained.get(k) for k in ("seed", "device", "train_accuracy",
                                                                  "val_accuracy", "epochs")}
        return source


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(PretrainSpectrogram())
