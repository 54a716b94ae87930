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

import fcntl
import json
from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceCapabilities, SourceModel
from tlbench.errors import ParamError, PluginError
from tlbench.params import Param, resolve_params


class Pretrain(Source):
    name = "pretrain"
    version = "2"
    description = "a timm architecture pretrained here on a target plugin's data (optionally shuffled labels)"
    params = {
        "model": Param(str, help="timm architecture, e.g. resnet18"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
        "target": Param(str, help="target plugin whose data the model is trained on"),
        "target_params": Param(dict, {}, "parameters of that target plugin"),
        "shuffle_labels": Param(bool, False, "train on randomly permuted labels (a source meant to hurt)"),
        "epochs": Param(int, 15, "pretraining epochs", min=1),
        "lr": Param(float, 2e-3, "pretraining learning rate (AdamW, cosine)", min=0),
        "batch_size": Param(int, 64, "pretraining batch size", min=1),
        "weight_decay": Param(float, 0.05, "pretraining weight decay", min=0),
        "seed": Param(int, None, "seed of the pretraining (initialisation, order, examples, shuffle); "
                               "unset: each run's own seed, one pretraining per seed"),
    }

    network = "timm"
    """The networks it builds are timm's: a timm source of the same architecture shares
    its from-scratch baseline."""

    def architecture(self, params: dict) -> dict:
        from .timm_source import timm_architecture

        return timm_architecture(params["model"], params["input_size"])

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"), source_head=True)

    # ------------------------------------------------------------------ config

    def _target(self, params: dict, env: Env):
        if env.registry is None:
            raise PluginError("pretrain: needs the plugin registry to find its target")
        item = env.registry.get("target", params["target"]).item
        try:
            target_params = resolve_params(item.params, params["target_params"], "target_params")
        except ParamError as exc:
            raise ParamError(f"pretrain {exc}") from None
        return item, target_params

    def seeded(self, params: dict) -> bool:
        return params["seed"] is None

    def check(self, params: dict, env: Env) -> None:
        import timm

        if not timm.is_model(params["model"]):
            raise ParamError(f"model: timm has no architecture {params['model']!r}")
        item, target_params = self._target(params, env)
        if item.task(target_params) != "classification":
            raise ParamError(f"target: pretrain trains a classifier, but {params['target']!r} with these "
                             f"target_params is a {item.task(target_params)} task")
        item.check(target_params, env)

    def fingerprint(self, params: dict, env: Env) -> str:
        """The pretraining recipe, its data and the device it runs on; not the seed (each
        run's seed is in its own identity)."""
        item, target_params = self._target(params, env)
        return "pretrain:" + self._recipe_key(params, env, item, target_params, item.load(target_params, env))

    def _seed(self, params: dict, env: Env) -> int:
        if params["seed"] is not None:
            return params["seed"]
        if env.seed is None:
            raise PluginError("pretrain: pretrains once per run seed, but was prepared or built without one")
        return env.seed

    def _recipe_key(self, params: dict, env: Env, item, target_params: dict, data) -> str:
        from tlbench.hashing import config_hash, splits_content_hash
        from tlbench.training import device_name

        seed = params["seed"] if params["seed"] is not None else 0  # the data's identity at one fixed seed
        content_hash, _ = splits_content_hash(data.splits(seed), env.registry.get("task", data.task).item.label_bytes)
        device = str(env.device).partition(":")[0]
        return config_hash({"plugin_version": self.version, "params": params, "target_version": item.version,
                            "target_params": target_params, "content_hash": content_hash,
                            "device": [device, device_name(str(env.device))]}, 24)

    def _data(self, params: dict, env: Env):
        """All examples of the pretraining target (split with the pretraining's seed,
        every part) and the weights' cache key."""
        import numpy as np

        from tlbench.api import Split
        from tlbench.hashing import config_hash, splits_content_hash

        seed = self._seed(params, env)
        item, target_params = self._target(params, env)
        data = item.load(target_params, env)
        splits = data.splits(seed)
        content_hash, _ = splits_content_hash(splits, env.registry.get("task", data.task).item.label_bytes)
        train = Split(examples=[*splits.train.examples, *splits.test.examples],
                      labels=np.concatenate([splits.train.labels, splits.test.labels]))
        if params["shuffle_labels"]:
            train.labels = np.random.default_rng(seed).permutation(train.labels)
        recipe = self._recipe_key(params, env, item, target_params, data)  # the data loaded once
        key = config_hash({"recipe": recipe, "seed": seed, "content_hash": content_hash}, 24)
        return data, train, splits.val, key, seed

    def _weights(self, env: Env, key: str) -> Path:
        return Path(env.cache_dir) / "pretrain" / f"{key}.safetensors"

    # ------------------------------------------------------------------ training

    def prepare(self, params: dict, env: Env) -> None:
        data, train, val, key, seed = self._data(params, env)
        weights = self._weights(env, key)
        if weights.exists():
            return
        weights.parent.mkdir(parents=True, exist_ok=True)
        with open(weights.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process trains, the others wait and reuse
            if weights.exists():
                return
            env.log(f"pretrain: training {params['model']} on {params['target']}"
                    f"{' (shuffled labels)' if params['shuffle_labels'] else ''}, seed {seed}, into {weights}")
            self._train(params, env, data, train, val, weights, seed)

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        import numpy as np
        from safetensors.torch import save_file

        from tlbench.api import Split, Splits
        from tlbench.training import (engine_defaults, param_groups, predict, resolve_device, seed_everything,
                                      supervised_target, train as train_model)

        from .timm_models import ImageEncoder, create, data_config

        seed_everything(seed)
        model = create(params["model"], pretrained=False, input_size=params["input_size"],
                       num_classes=data.num_classes)
        empty = Split(examples=[], labels=np.zeros(0, dtype=np.int64))
        task = env.registry.get("task", data.task).item
        target = supervised_target(Splits(train=train, val=val, test=empty), data, task,
                                   ImageEncoder(data_config(model, params["input_size"])),
                                   resolve_device(env.device), seed)
        recipe = engine_defaults(epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                                 weight_decay=params["weight_decay"], select="last")
        groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])
        outcome = train_model(target, model, groups, recipe)
        train_acc = target.headline("train", predict(target, model, "train", recipe))
        model.cpu()
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        meta = {"params": params, "seed": seed, "device": str(env.device), "num_classes": data.num_classes, "train_accuracy": train_acc,
                "val_accuracy": outcome.best_val, "epochs": outcome.epochs_run}
        tmp = weights.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"tlbench": json.dumps(meta)})
        tmp.replace(weights)

    # ------------------------------------------------------------------ building

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from safetensors import safe_open
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
        with safe_open(str(weights), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("tlbench", "{}"))
        return source_model(model, pretrained=True, data_config=data_config(model, params["input_size"]),
                            meta={"model": params["model"], "weights": str(weights),
                                  "pretraining": {k: meta.get(k) for k in ("seed", "device", "train_accuracy",
                                                                          "val_accuracy", "epochs")}})


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(Pretrain())
