"""Sources pretrained here on a target plugin's data: what every such source shares.

A subclass names an architecture family (timm image models, transformers audio
encoders) and implements `_train` (fit a classifier on the pretraining examples and
save its weights) and `build`; this base does the rest, the same way for every family:

- the pretraining target is any registered classification target, with its own
  parameters (`target`, `target_params`);
- by default the source is pretrained once per seed of the suite (`seeded`): seed k
  transfers from the weights pretrained with seed k (initialisation, data order, the draw
  of the pretraining examples, the label shuffle), so the intervals over seeds include
  the pretraining's own randomness. A fixed `seed` pretrains once for every seed;
- weights are cached under ``<cache>/pretrain/``, keyed by the whole pretraining config,
  the plugin's and the target plugin's versions, the content hash of the data, the seed,
  and the device they were trained on (its kind and model: other kernels give other
  weights after a few hundred chaotic steps). The key without the seed is the source's
  fingerprint, so results from machines of another kind are a different source in merged
  reports, and runs are redone when the pretraining data change;
- one process trains, others wait on a lock and reuse the file.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from tlbench.api import Env, Source
from tlbench.errors import ParamError, PluginError
from tlbench.params import Param, resolve_params

RECIPE_PARAMS = {
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
"""The pretraining recipe's parameters, shared by every family."""


class PretrainedHere(Source):
    """A source whose weights are trained here, once per seed, on a target's data."""

    def _target(self, params: dict, env: Env):
        if env.registry is None:
            raise PluginError(f"{self.name}: needs the plugin registry to find its target")
        item = env.registry.get("target", params["target"]).item
        try:
            target_params = resolve_params(item.params, params["target_params"], "target_params")
        except ParamError as exc:
            raise ParamError(f"{self.name} {exc}") from None
        return item, target_params

    def seeded(self, params: dict) -> bool:
        return params["seed"] is None

    def check(self, params: dict, env: Env) -> None:
        item, target_params = self._target(params, env)
        if item.task(target_params) != "classification":
            raise ParamError(f"target: {self.name} trains a classifier, but {params['target']!r} with these "
                             f"target_params is a {item.task(target_params)} task")
        item.check(target_params, env)

    def fingerprint(self, params: dict, env: Env) -> str:
        """The pretraining recipe, its data and the device it runs on; not the seed (each
        run's seed is in its own identity)."""
        item, target_params = self._target(params, env)
        return f"{self.name}:" + self._recipe_key(params, env, item, target_params, item.load(target_params, env))

    def _seed(self, params: dict, env: Env) -> int:
        if params["seed"] is not None:
            return params["seed"]
        if env.seed is None:
            raise PluginError(f"{self.name}: pretrains once per run seed, but was prepared or built without one")
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
            env.log(f"{self.name}: training {self._what(params)} on {params['target']}"
                    f"{' (shuffled labels)' if params['shuffle_labels'] else ''}, seed {seed}, into {weights}")
            self._train(params, env, data, train, val, weights, seed)

    def _what(self, params: dict) -> str:
        """The architecture, as the log line names it."""
        return str(params.get("model"))

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        """Fit a classifier on `train` (`_fit`) and save its weights to `weights`
        atomically (a temporary file renamed)."""
        raise NotImplementedError

    def _fit(self, model, encode, params: dict, env: Env, data, train, val, seed: int) -> dict:
        """Train `model` (encoded inputs → logits) on `train` with tlbench's engine and the
        recipe's parameters, selected on nothing (the last epoch); what it reached, as
        the weights record it."""
        import numpy as np

        from tlbench.api import Split, Splits
        from tlbench.training import (engine_defaults, param_groups, predict, resolve_device, supervised_target,
                                      train as train_model)

        empty = Split(examples=[], labels=np.zeros(0, dtype=np.int64))
        task = env.registry.get("task", data.task).item
        target = supervised_target(Splits(train=train, val=val, test=empty), data, task, encode,
                                   resolve_device(env.device), seed)
        recipe = engine_defaults(epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                                 weight_decay=params["weight_decay"], select="last")
        groups = param_groups(model.named_parameters(), params["lr"], params["weight_decay"])
        outcome = train_model(target, model, groups, recipe)
        train_acc = target.headline("train", predict(target, model, "train", recipe))
        return {"seed": seed, "device": str(env.device), "train_accuracy": train_acc,
                "val_accuracy": outcome.best_val, "epochs": outcome.epochs_run}


def save_weights(model, weights: Path, meta: dict) -> None:
    """`model`'s state as safetensors at `weights`, `meta` in its metadata (what the
    pretraining reached travels with the weights), written in one rename."""
    from safetensors.torch import save_file

    model.cpu()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"tlbench": json.dumps(meta)})
    tmp.replace(weights)


def read_weights_meta(weights: Path) -> dict:
    """What `save_weights` stored with the weights."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("tlbench", "{}"))
