"""Source `hf`: a transformers encoder (BERT, RoBERTa, MiniLM, ViT, ConvNeXt, wav2vec 2.0, HuBERT, WavLM, Whisper...).

`model` is a hub id or a local directory saved with ``save_pretrained`` (the model and
its tokenizer or image processor). A hub model is fetched once into the hub cache
(``HF_HOME``) in `prepare` (scheduled before any run of the source), only the files an AutoModel needs (config,
tokenizer or processor files, safetensors weights, or .bin when there are none); builds
load that local snapshot and never go online. Text models take their tokenizer, image
models their image processor; the pooled output (CLS token, masked mean or the model's
pooler) is the feature vector, and the encoder's blocks are the layer groups.

Speech encoders (wav2vec 2.0, HuBERT, WavLM: `AutoModel`; Whisper: the encoder of
`WhisperModel`) take audio through their feature extractor, at its `sampling_rate`
(Whisper: exactly 30-second clips); their features are the mean over the frames that
hold audio, of the last hidden state or of SUPERB's learnable weighted sum of all of
them (`layer_weighting`); see `hf_audio`.

A cached hub snapshot counts only when it holds every file `prepare` would fetch, at the
sizes of the snapshot's own listing (`hub_cache`); a partial one is fetched again when
the hub can be reached, and named as partial when it cannot. A local directory is a
path (`Param.path`): relative to the suite's folder, out of run identities (its
content's sha256 is the fingerprint), and in the architecture by the digest of its
config and tokenizer or processor files, never by where it lies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceCapabilities, SourceModel
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import Param

from .hf_extra import require_hf_extra

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".tiktoken", ".merges")
_HOW = "set model to a local directory saved with save_pretrained (model and tokenizer or image processor)"
_SPEECH_TYPES = ("whisper",)
"""Speech encoders whose config has no `conv_dim` (the wav2vec 2.0 family's conv feature encoder)."""


def config_modality(config: dict) -> str | None:
    """'audio', 'text' or 'image' from a model's config.json (as a dict), or None."""
    if "conv_dim" in config or config.get("model_type") in _SPEECH_TYPES:
        return "audio"
    if config.get("vocab_size"):
        return "text"
    return "image" if config.get("num_channels") else None


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        p.suffix in _WEIGHT_SUFFIXES and p.is_file() for p in folder.iterdir())


def _download_patterns(files: list[str]) -> list[str]:
    """The top-level files an AutoModel and its tokenizer/processor read (safetensors
    weights when the repository has them, else .bin weights), and a sentence-transformers
    pooling config."""
    top = [f for f in files if "/" not in f]
    weights = [f for f in top if f.endswith(".safetensors")] or \
        [f for f in top if f.endswith(".bin") and ("pytorch_model" in f or f == "model.bin")]
    index = [f for f in top if f.endswith(".index.json")]
    pooling = [f for f in files if f == "1_Pooling/config.json"]  # a sentence-transformers model's pooling
    return sorted({*weights, *index, *pooling, *(f for f in top if f.endswith(_SIDE_FILE_SUFFIXES))})


class HFSource(Source):
    name = "hf"
    version = "1"
    description = "transformers encoders (text, vision or speech) from the hub (HF cache) or a local directory"
    params = {
        "model": Param(str, help="hub id (e.g. google-bert/bert-base-uncased) or a local model directory "
                                 "(relative to the suite's folder)", path="local-or-id"),
        "revision": Param(str, None, "hub revision: branch, tag or commit sha (default: main)"),
        "pretrained": Param(bool, True, "load the pretrained weights (false: the architecture, randomly "
                                        "initialised)"),
        "pooling": Param(str, "auto", "features: 'cls' token, 'mean' over tokens (masked), the model's "
                                      "'pooler', or 'auto' (a sentence-transformers folder's own, the pooler "
                                      "of convolutional image models, else cls)",
                         choices=("auto", "cls", "mean", "pooler")),
        "max_length": Param(int, 128, "text: tokens per example (longer texts are truncated)", min=2),
        "layer_weighting": Param(str, "last", "speech: features from the 'last' hidden state, or SUPERB's "
                                              "learnable softmax-'weighted' sum of all of them (trained with the "
                                              "backbone, the adapters or the probe; recorded)",
                                 choices=("last", "weighted"), omit_default=True),
        "seconds": Param(float, None, "speech: crop or pad every clip to this length (default: each its own; "
                                      "Whisper always takes 30 s)", min=0.01, omit_default=True),
    }

    def architecture(self, params: dict) -> dict:
        """Hub models by id and revision; a local directory by a digest of what defines the
        network and its inputs (config, tokenizer or processor files: all but the weights)."""
        model = params["model"]
        local = self._local_dir(params)
        if local is not None and local.is_dir():
            from .local_files import folder_digest

            model = "local:" + folder_digest(local, skip_suffixes=_WEIGHT_SUFFIXES)
        speech = {key: params[key] for key, default in (("layer_weighting", "last"), ("seconds", None))
                  if params[key] != default}
        return {"model": model, "revision": params["revision"], "pooling": params["pooling"],
                "max_length": params["max_length"], **speech}

    def capabilities(self, params: dict) -> SourceCapabilities:
        """Text models give token sequences besides pooled features, and encode word lists
        when their tokenizer is fast (a tokenizer.json on disk says so; otherwise the build
        tells); the modality is read off the model's config.json when it is on disk. No
        classifier of its own."""
        modality = self._modality(params)
        representations = ("pooled",) if modality in ("image", "audio") else ("pooled", "tokens")
        words = False if modality in ("image", "audio") else (True if self._fast_tokenizer(params) else None)
        return SourceCapabilities(modality=modality, representations=representations, source_head=False,
                                  words=words)

    def _fast_tokenizer(self, params: dict) -> bool:
        try:
            folder = self._folder(params)
            return folder is not None and (folder / "tokenizer.json").is_file()
        except Exception:  # not on disk, no hf extra: the build will tell
            return False

    def _modality(self, params: dict) -> str | None:
        try:
            folder = self._folder(params)
            if folder is not None:
                return config_modality(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        except Exception:  # not on disk, no hf extra, an unreadable config: the build will tell
            pass
        return None

    # ------------------------------------------------------------------ where the model is

    def _local_dir(self, params: dict) -> Path | None:
        from .hub_cache import looks_like_path

        path = Path(params["model"]).expanduser()
        if path.exists() or looks_like_path(params["model"]):
            return path
        return None

    def _repo(self, params: dict):
        from .hub_cache import HubRepo

        return HubRepo(params["model"], "model", params["revision"])

    def _folder(self, params: dict) -> Path | None:
        """The model folder on disk (a local directory or a whole cached snapshot), if any."""
        local = self._local_dir(params)
        if local is not None:
            return local if local.is_dir() and _has_weights(local) else None
        snapshot = self._repo(params).cached_snapshot()
        if snapshot is None or self._missing(params):
            return None
        return snapshot if _has_weights(snapshot) else None

    def _missing(self, params: dict) -> list[str]:
        """What the cached snapshot lacks of the files `prepare` fetches, by its listing."""
        repo = self._repo(params)
        snapshot = repo.cached_snapshot()
        return repo.missing(snapshot, _download_patterns) if snapshot is not None else []

    # ------------------------------------------------------------------ the contract

    def check(self, params: dict, env: Env) -> None:
        from .hub_cache import hub_online

        require_hf_extra("source 'hf'", "transformers")
        modality = self._modality(params)
        for key, default in (("layer_weighting", "last"), ("seconds", None)):
            if params[key] != default and modality not in (None, "audio"):
                raise ParamError(f"{key}: only for speech encoders; {params['model']!r} is a {modality} model")
        local = self._local_dir(params)
        if local is not None:
            shown = repr(os.path.abspath(local))
            if not local.is_dir():
                raise ResourceUnavailable(f"model: no directory {shown}; {_HOW}")
            if not _has_weights(local):
                raise ResourceUnavailable(f"model: {shown} has no config.json with .safetensors or "
                                          f".bin weights; save the model there with save_pretrained")
            if params["revision"]:
                raise ParamError("revision: only for hub ids; model is a local directory")
            return
        if self._folder(params) is None and not hub_online():
            raise self._repo(params).unavailable(_HOW, self._missing(params))

    def fingerprint(self, params: dict, env: Env) -> str | None:
        from .hub_cache import snapshot_revision
        from .local_files import folder_digest

        if self._local_dir(params) is not None:
            return "sha256:" + folder_digest(self._local_dir(params))
        repo = self._repo(params)
        folder = self._folder(params)
        sha = snapshot_revision(folder) if folder is not None else repo.remote_sha(_HOW)
        return f"hf:{repo.repo_id}@{sha}"

    def prepare(self, params: dict, env: Env) -> None:
        """Fetch a hub model's files into the hub cache once, before any run."""
        if self._folder(params) is not None:
            return
        repo = self._repo(params)
        patterns = _download_patterns(repo.remote_files(_HOW))
        if not any(p.endswith(_WEIGHT_SUFFIXES) for p in patterns):
            raise ResourceUnavailable(f"{repo.describe()} has no .safetensors or pytorch_model .bin weights")
        env.log(f"hf: downloading {repo.describe()} ({len(patterns)} files)")
        repo.download_snapshot(_HOW, allow_patterns=patterns)

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from .hf_models import load_source
        from .hub_cache import snapshot_revision

        folder = self._folder(params)
        if folder is None:
            if self._local_dir(params) is not None:
                raise ResourceUnavailable(f"model: {params['model']!r} is not a model directory; {_HOW}")
            raise self._repo(params).unavailable(_HOW)
        use_weights = pretrained and params["pretrained"]
        meta = {"model": params["model"], "folder": str(folder), "weights": "pretrained" if use_weights
                else "random"}
        if self._local_dir(params) is None:
            meta["hub"] = {"repo": params["model"], "revision": snapshot_revision(folder)}
        try:
            return load_source(folder, pretrained=use_weights, pooling=params["pooling"],
                               max_length=params["max_length"], meta=meta,
                               layer_weighting=params["layer_weighting"], seconds=params["seconds"])
        except ValueError as exc:
            raise ParamError(f"model {params['model']!r}: {exc}") from None


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(HFSource())
