"""Source `pretrain-speech`: a small speech encoder built from a config and trained here.

The audio counterpart of `pretrain`: a transformers speech encoder (wav2vec 2.0, HuBERT
or WavLM), made from a small configuration, randomly initialised, and trained as a
classifier on a target plugin's audio (spoken digits by some voices, say), offline. It
gives an audio suite sources with known relationships to its target: pretrained on other
voices saying the same words (helpful), or on shuffled labels (meant to hurt).

Everything a pretrained-here source shares (per-seed pretraining, cache keys, the
fingerprint, the lock) comes from `pretraining.PretrainedHere`. The pretraining audio is
conditioned as a run's is (`tlbench.audio.condition`: mono, 16 kHz, `seconds` long); the
model is the encoder with a linear classifier on its last layer's mean-pooled frames, trained by
tlbench's engine (a `layer_weighting = "weighted"` source learns its mix of layers on
the target, as SUPERB's downstream models do). The encoder (without the classifier) is saved with `save_pretrained`
into ``<cache>/pretrain/<key>/`` (renamed into place when complete) together with its
feature extractor, and built from there as the `hf` source builds any speech-encoder
folder (`hf_audio.load_audio_source`): the same pooling, layer groups, layer weighting
and records. Its from-scratch baseline is the same configuration randomly initialised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import tlbench
from tlbench.api import Env, SourceCapabilities, SourceModel
from tlbench.params import Param

from .pretraining import RECIPE_PARAMS, PretrainedHere

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
         "conv_dim": [32, 32, 32, 32], "conv_kernel": [10, 5, 3, 3], "conv_stride": [5, 4, 2, 2],
         "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "feat_extract_norm": "layer",
         "do_stable_layer_norm": True, "hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
         "feat_proj_dropout": 0.0, "layerdrop": 0.0, "mask_time_prob": 0.0, "apply_spec_augment": False}
"""The default configuration: about 120 k parameters, a frame every 10 ms (a stride of 160
samples at 16 kHz), layer-normalised convolutions so that it takes an attention mask."""
RATE = 16000


class PretrainSpeech(PretrainedHere):
    name = "pretrain-speech"
    version = "1"
    description = ("a small transformers speech encoder (wav2vec 2.0, HuBERT, WavLM) built from a config and "
                   "pretrained here on a target plugin's audio")
    params = {
        "model_type": Param(str, "wav2vec2", "the encoder family", choices=MODEL_TYPES),
        "config": Param(dict, {}, "configuration values over tlbench's small default (hidden_size 64, 2 layers, "
                                  "a frame every 10 ms)"),
        "seconds": Param(float, 1.0, "every clip is cropped or zero-padded to this length", min=0.1),
        "layer_weighting": Param(str, "last", "'last': the last layer's frames; 'weighted': a learnable mix "
                                              "of every layer's (SUPERB)", choices=("last", "weighted")),
        **RECIPE_PARAMS,
    }

    def architecture(self, params: dict) -> dict:
        return {"model_type": params["model_type"], "config": self._config_values(params),
                "seconds": params["seconds"], "layer_weighting": params["layer_weighting"]}

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="audio", representations=("pooled",), source_head=False)

    def _what(self, params: dict) -> str:
        return f"a small {params['model_type']}"

    @staticmethod
    def _config_values(params: dict) -> dict:
        return {**SMALL, **params["config"]}

    def _config(self, params: dict):
        from transformers import AutoConfig

        try:
            return AutoConfig.for_model(params["model_type"], **self._config_values(params))
        except (TypeError, ValueError) as exc:
            from tlbench.errors import ParamError

            raise ParamError(f"config: {exc}") from None

    @staticmethod
    def _extractor():
        from transformers import Wav2Vec2FeatureExtractor

        return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=True,
                                        return_attention_mask=True)

    def check(self, params: dict, env: Env) -> None:
        self._config(params)
        super().check(params, env)

    def _weights(self, env: Env, key: str) -> Path:
        return Path(env.cache_dir) / "pretrain" / f"{key}-speech"

    def _save(self, model, folder: Path) -> None:
        """The encoder (or only its configuration) and its feature extractor into `folder`,
        whole or not at all; when another process got there first (the same content), its
        folder stays."""
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            model.save_pretrained(tmp)
            self._extractor().save_pretrained(tmp)
            try:
                tmp.rename(folder)
            except OSError:
                if not folder.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _random_folder(self, params: dict, env: Env) -> Path:
        """A folder of the configuration and feature extractor alone, for a randomly
        initialised build (the scratch baseline, and the start of pretraining). No model is
        made here: that would draw from torch's random generator after the caller seeded
        it, and the initialisation would depend on which process wrote the folder first."""
        from tlbench.hashing import config_hash

        folder = Path(env.cache_dir) / "pretrain" / f"config-{config_hash(self.architecture(params), 16)}-speech"
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            self._save(self._config(params), folder)
        return folder

    # ------------------------------------------------------------------ training

    def _train(self, params, env, data, train, val, weights: Path, seed: int) -> None:
        import torch
        from torch import nn

        from tlbench.api import AudioInput, Split
        from tlbench.audio import condition
        from tlbench.training import seed_everything

        from .hf_audio import load_audio_source

        seed_everything(seed)
        takes = AudioInput(RATE, params["seconds"])
        train = Split(examples=condition(train.examples, takes), labels=train.labels)
        val = Split(examples=condition(val.examples, takes), labels=val.labels)
        source = load_audio_source(self._random_folder(params, env), self._config(params), pretrained=False,
                                   layer_weighting="last", seconds=params["seconds"], meta={})
        model = nn.Sequential(source.backbone, nn.Linear(source.feature_dim, data.num_classes))
        reached = self._fit(model, source.encode, params, env, data, train, val, seed)
        encoder = source.backbone.model.cpu()
        encoder.config.update({"tlbench": reached})
        with torch.no_grad():
            self._save(encoder, weights)

    # ------------------------------------------------------------------ building

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from .hf_audio import load_audio_source

        if not pretrained:
            return load_audio_source(self._random_folder(params, env), self._config(params), pretrained=False,
                                     layer_weighting=params["layer_weighting"], seconds=params["seconds"],
                                     meta={"model": f"small {params['model_type']}", "weights": "random"})
        _, _, _, key, _ = self._data(params, env)
        folder = self._weights(env, key)
        if not folder.exists():
            self.prepare(params, env)
        with open(folder / "config.json", encoding="utf-8") as handle:
            trained = json.load(handle).get("tlbench") or {}
        config = self._config(params)
        return load_audio_source(folder, config, pretrained=True, layer_weighting=params["layer_weighting"],
                                 seconds=params["seconds"],
                                 meta={"model": f"small {params['model_type']}", "weights": str(folder),
                                       "pretraining": trained})


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(PretrainSpeech())
