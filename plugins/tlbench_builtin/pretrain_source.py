"""Source `pretrain`: a timm architecture trained on the spot on a target plugin's data.

It makes sources with known relationships to a target, offline: pretrained on related
classes (helpful), or on the same images with shuffled labels (meant to hurt).

By default the source is pretrained once per seed of the suite: seed k transfers from
the weights pretrained with seed k (initialisation, data order, the draw of the
pretraining examples, the label shuffle), so the intervals over seeds include the
pretraining's own randomness, not one pretraining run's luck. A fixed `seed` pretrains
once for every seed instead.

The weights are trained with tlbench's own training engine and cached as safetensors
under ``<cache>/pretrain/``, keyed by the whole pretraining config, the target plugin's
version, the content hash of the data, the seed, and the device they were trained on:
its kind and its model (the CPU or GPU name), since other kernels give other weights
after a few hundred chaotic steps. Later builds and other processes reuse the file. The
key without the seed is the source's fingerprint, so results from machines of another
kind are a different source in merged reports, and runs are redone when the pretraining
data change. What the pretraining reached (accuracies, epochs) travels inside the
weights file's metadata, written with the weights in one atomic rename.
"""

from __future__ import annotations

from pathlib import Path

import tlbench
from tlbench.api import Env, SourceCapabilities, SourceModel
from tlbench.errors import ParamError
from tlbench.params import Param

from .pretraining import RECIPE_PARAMS, PretrainedHere, read_weights_meta, save_weights


class Pretrain(PretrainedHere):
    name = "pretrain"
    version = "2"
    description = "a timm architecture pretrained here on a target plugin's data (optionally shuffled labels)"
    params = {
        "model": Param(str, help="timm architecture, e.g. resnet18"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
        **RECIPE_PARAMS,
    }

    network = "timm"
    """The networks it builds are timm's: a timm source of the same architecture shares
    its from-scratch baseline."""

    def architecture(self, params: dict) -> dict:
        from .timm_source import timm_architecture

        return timm_architecture(params["model"], params["input_size"])

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"), source_head=True)

    def check(self, params: dict, env: Env) -> None:
        from .timm_names import is_known

        if not is_known(params["model"], env.cache_dir):
            raise ParamError(f"model: timm has no architecture {params['model']!r}")
        super().check(params, env)

    # ------------------------------------------------------------------ training

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        from tlbench.training import seed_everything

        from .timm_models import ImageEncoder, create, data_config

        seed_everything(seed)
        model = create(params["model"], pretrained=False, input_size=params["input_size"],
                       num_classes=data.num_classes)
        reached = self._fit(model, ImageEncoder(data_config(model, params["input_size"])), params, env, data,
                            train, val, seed)
        save_weights(model, weights, {"params": params, "num_classes": data.num_classes, **reached})

    # ------------------------------------------------------------------ building

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from safetensors.torch import load_file

        from .timm_models import create, data_config, source_model

        if not pretrained:
            model = create(params["model"], pretrained=False, input_size=params["input_size"])
            return source_model(model, pretrained=False, data_config=data_config(model, params["input_size"]),
                                meta={"model": params["model"], "weights": "random"})
        data, _, _, key, seed = self._data(params, env)
        weights = self._weights(env, key)
        if not weights.exists():
            self.prepare(params, env)
        model = create(params["model"], pretrained=False, input_size=params["input_size"],
                       num_classes=data.num_classes)
        model.load_state_dict(load_file(str(weights)))
        meta = read_weights_meta(weights)
        return source_model(model, pretrained=True, data_config=data_config(model, params["input_size"]),
                            meta={"model": params["model"], "weights": str(weights),
                                  "pretraining": {k: meta.get(k) for k in ("seed", "device", "train_accuracy",
                                                                          "val_accuracy", "epochs")}})


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(Pretrain())
