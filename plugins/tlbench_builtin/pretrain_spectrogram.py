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

import json
from pathlib import Path

import tlbench
from tlbench.api import Env, SourceCapabilities, SourceModel
from tlbench.errors import ParamError
from tlbench.params import Param

from .pretraining import RECIPE_PARAMS, PretrainedHere
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
        import timm

        if not timm.is_model(params["model"]):
            raise ParamError(f"model: timm has no architecture {params['model']!r}")
        SpectrogramSource().check(self._spectrogram_params(params, None), env)
        super().check(params, env)

    # ------------------------------------------------------------------ training

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        import numpy as np
        from safetensors.torch import save_file

        from tlbench.api import AudioInput, Split, Splits
        from tlbench.audio import condition
        from tlbench.training import (engine_defaults, param_groups, predict, resolve_device, seed_everything,
                                      supervised_target, train as train_model)

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
        empty = Split(examples=[], labels=np.zeros(0, dtype=np.int64))
        task = env.registry.get("task", data.task).item
        target = supervised_target(Splits(train=train, val=val, test=empty), data, task, encoder,
                                   resolve_device(env.device), seed)
        recipe = engine_defaults(epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                                 weight_decay=params["weight_decay"], select="last")
        groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])
        outcome = train_model(target, model, groups, recipe)
        train_acc = target.headline("train", predict(target, model, "train", recipe))
        model.cpu()
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        meta = {"seed": seed, "device": str(env.device), "num_classes": data.num_classes,
                "train_accuracy": train_acc, "val_accuracy": outcome.best_val, "epochs": outcome.epochs_run}
        tmp = weights.with_suffix(f".{seed}.tmp")
        save_file(state, str(tmp), metadata={"tlbench": json.dumps(meta)})
        tmp.replace(weights)

    # ------------------------------------------------------------------ building

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from safetensors import safe_open

        spectrogram = SpectrogramSource()
        if not pretrained:
            return spectrogram.build(self._spectrogram_params(params, None), env, pretrained=False)
        _, _, _, key, _ = self._data(params, env)
        weights = self._weights(env, key)
        if not weights.exists():
            self.prepare(params, env)
        source = spectrogram.build(self._spectrogram_params(params, weights), env, pretrained=True)
        with safe_open(str(weights), framework="pt") as handle:
            trained = json.loads((handle.metadata() or {}).get("tlbench", "{}"))
        source.meta["pretraining"] = {k: trained.get(k) for k in ("seed", "device", "train_accuracy",
                                                                  "val_accuracy", "epochs")}
        return source


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(PretrainSpectrogram())
