"""Source `timm`: any timm architecture, pretrained from the hub or a local file, or random.

Where the weights come from, in order: `file` (a local .safetensors, or a .pth/.bin
loaded with weights_only=True); a ``local-dir:`` model folder; the Hugging Face hub
(timm's own ``timm/<model>.<tag>`` repositories, or an ``hf-hub:org/name`` model), read
from the local hub cache that ``HF_HOME`` names. Hub weights are fetched once, in
`prepare` (scheduled before any run of the source); builds load the cached file and
never go online. A
model that is not cached while the hub is off ends the suite before any run with one
line saying how to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceCapabilities, SourceModel
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.params import Param

_HUB_PREFIXES = ("hf-hub:", "hf_hub:")
_LOCAL_PREFIX = "local-dir:"
_HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""The files timm reads from a model repository, in its order of preference."""


@dataclass(frozen=True)
class WeightsLocation:
    """Where the pretrained weights of a timm model name live."""

    kind: str
    """'file' (the user's), 'hub' (a timm name's repository), 'hub-model' (an hf-hub: model),
    'local-dir', or 'url' (old weights on a plain URL, in torch hub's cache)."""
    path: Path | None = None
    repo: object = None  # HubRepo
    url: str | None = None
    num_classes: int | None = None


def _split_hub(name: str) -> tuple[str, str | None]:
    repo = name.split(":", 1)[1]
    return (repo.split("@", 1)[0], repo.split("@", 1)[1]) if "@" in repo else (repo, None)


def _how(name: str) -> str:
    return f"set file = <a local weights file> for {name!r}"


class TimmSource(Source):
    name = "timm"
    version = "2"
    description = "timm image models: hub weights (HF cache), a local weights file, or random init"
    params = {
        "model": Param(str, help="timm architecture or pretrained tag (resnet50.a1_in1k), "
                                 "hf-hub:org/name, or local-dir:/path/to/folder"),
        "pretrained": Param(bool, True, "load pretrained weights (from `file` when given)"),
        "file": Param(str, None, "local weights file (.safetensors, .pth, .bin) instead of the hub"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
    }

    def architecture(self, params: dict) -> dict:
        model = params["model"]
        arch = model if model.startswith((*_HUB_PREFIXES, _LOCAL_PREFIX)) else model.split(".")[0]
        return {"model": arch, "input_size": params["input_size"]}

    def capabilities(self, params: dict) -> SourceCapabilities:
        """Images; pooled features, and feature maps through timm's `forward_intermediates`
        (nearly every timm model has it; one that does not fails its run); a classifier of
        its own only with pretrained weights that keep one."""
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"),
                                  source_head=None if params["pretrained"] else False)

    # ------------------------------------------------------------------ where the weights are

    def _location(self, params: dict) -> WeightsLocation:
        from timm.models import get_pretrained_cfg

        from .hub_cache import HubRepo

        model = params["model"]
        if params["file"]:
            return WeightsLocation("file", path=Path(params["file"]).expanduser())
        if model.startswith(_LOCAL_PREFIX):
            return WeightsLocation("local-dir", path=Path(model[len(_LOCAL_PREFIX):]).expanduser())
        if model.startswith(_HUB_PREFIXES):
            repo_id, revision = _split_hub(model)
            return WeightsLocation("hub-model", repo=HubRepo(repo_id, "model", revision))
        cfg = get_pretrained_cfg(model)
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
            raise ResourceUnavailable(f"model: timm has no pretrained weights for {model!r}; "
                                      f"set file = <a local weights file> or pretrained = false")
        if cfg.file:
            return WeightsLocation("file", path=Path(cfg.file), num_classes=cfg.num_classes)
        if cfg.hf_hub_id and not cfg.custom_load:
            repo_id, _, revision = cfg.hf_hub_id.partition("@")
            return WeightsLocation("hub", repo=HubRepo(repo_id, "model", revision or None),
                                   num_classes=cfg.num_classes)
        return WeightsLocation("url", url=cfg.url, path=_torch_hub_file(cfg.url), num_classes=cfg.num_classes)

    def _cached_weights(self, where: WeightsLocation) -> Path | None:
        """The local weights file or folder, if it is on disk."""
        if where.kind in ("file", "local-dir", "url"):
            return where.path if where.path is not None and where.path.exists() else None
        if where.kind == "hub":
            for filename in _HUB_WEIGHTS:
                found = where.repo.cached_file(filename)
                if found is not None:
                    return found
            return None
        snapshot = where.repo.cached_snapshot()  # hub-model: config.json and weights
        if snapshot is not None and (snapshot / "config.json").is_file() and \
                any((snapshot / f).is_file() for f in _HUB_WEIGHTS):
            return snapshot
        return None

    # ------------------------------------------------------------------ the contract

    def check(self, params: dict, env: Env) -> None:
        import timm

        from .hub_cache import hub_online, offline_setting

        model = params["model"]
        if not model.startswith((*_HUB_PREFIXES, _LOCAL_PREFIX)) and not timm.is_model(model.split(".")[0]):
            from tlbench.params import closest

            arch = model.split(".")[0]
            raise ResourceUnavailable(f"model: timm has no architecture {arch!r}"
                                      f"{closest(arch, timm.list_models())}")
        if params["file"] and not params["pretrained"]:
            raise ParamError("file: a weights file is given but pretrained = false would never load it; "
                             "remove one of the two")
        if not params["pretrained"] and not model.startswith((*_HUB_PREFIXES, _LOCAL_PREFIX)):
            return  # a random architecture needs nothing from anywhere
        where = self._location(params)
        if where.kind == "file" and where.path.is_dir():
            raise ResourceUnavailable(f"file: {str(where.path)!r} is a directory; expected a weights file "
                                      f"(.safetensors, .pth or .bin)")
        if self._cached_weights(where) is not None:
            return
        if where.kind == "file":
            raise ResourceUnavailable(f"file: weights file {str(where.path)!r} does not exist")
        if where.kind == "local-dir":
            raise ResourceUnavailable(f"model: no model folder {str(where.path)!r} "
                                      f"(expected config.json and model.safetensors or pytorch_model.bin)")
        if where.kind == "url":
            if offline_setting():
                raise ResourceUnavailable(f"model {model!r}: its weights ({where.url}) are not in torch hub's "
                                          f"cache ({where.path.parent}) and {offline_setting()} is set; "
                                          f"download them once with network or {_how(model)}")
            return
        if not hub_online():
            raise where.repo.unavailable(_how(model))

    def fingerprint(self, params: dict, env: Env) -> str | None:
        from tlbench.hashing import file_sha256

        from .hub_cache import snapshot_revision

        model = params["model"]
        if not params["pretrained"] and not model.startswith(_HUB_PREFIXES):
            return None
        where = self._location(params)
        cached = self._cached_weights(where)
        if where.kind in ("hub", "hub-model"):
            sha = snapshot_revision(cached) if cached is not None else where.repo.remote_sha(_how(model))
            return f"hf:{where.repo.repo_id}@{sha}"
        if where.kind == "url":
            return f"url:{where.url}"
        if where.kind == "local-dir":
            from .local_files import folder_digest

            return "sha256:" + folder_digest(where.path)
        return "sha256:" + file_sha256(where.path)

    def prepare(self, params: dict, env: Env) -> None:
        """Make sure the weights are on disk (download hub weights once) and loadable."""
        model = params["model"]
        if not params["pretrained"] and not model.startswith(_HUB_PREFIXES):
            return
        where = self._location(params)
        if where.kind == "file" and params["file"]:
            from .timm_models import load_weights_file

            try:
                load_weights_file(where.path)
            except Exception as exc:
                raise ResourceUnavailable(f"file: {str(where.path)!r} cannot be loaded as weights "
                                          f"(safetensors, or a torch pickle with weights_only=True): "
                                          f"{type(exc).__name__}: {first_line(exc, 200)}"
                                          ) from None
            return
        if self._cached_weights(where) is not None:
            return
        env.log(f"timm: downloading the weights of {model!r}")
        if where.kind == "hub":
            self._download_hub_file(where.repo, model)
        elif where.kind == "hub-model":
            files = where.repo.remote_files(_how(model))
            weights = next((f for f in _HUB_WEIGHTS if f in files), None)
            if weights is None or "config.json" not in files:
                raise ResourceUnavailable(f"model {model!r}: the repository has no config.json with "
                                          f"model.safetensors or pytorch_model.bin, so timm cannot load it")
            where.repo.download_snapshot(_how(model), allow_patterns=["config.json", weights])
        elif where.kind == "url":
            from .timm_models import create

            try:
                create(model, pretrained=True)  # timm's own downloader fills torch hub's cache
            except Exception as exc:
                raise ResourceUnavailable(f"model {model!r}: downloading {where.url} failed "
                                          f"({type(exc).__name__}); {_how(model)}") from None

    @staticmethod
    def _download_hub_file(repo, model: str) -> Path:
        from huggingface_hub.errors import EntryNotFoundError

        for filename in _HUB_WEIGHTS:
            try:
                return repo.download_file(filename, _how(model))
            except EntryNotFoundError:
                continue
        raise ResourceUnavailable(f"model {model!r}: {repo.describe()} has none of {', '.join(_HUB_WEIGHTS)}")

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from .hub_cache import snapshot_revision
        from .timm_models import create, data_config, source_model

        model_name = params["model"]
        use_weights = pretrained and params["pretrained"]
        hub_model = model_name.startswith(_HUB_PREFIXES)
        meta: dict = {"model": model_name}
        if not use_weights and not hub_model:
            model = create(model_name, pretrained=False, input_size=params["input_size"])
            meta["weights"] = "random"
        else:
            where = self._location(params)
            local = self._cached_weights(where)
            if local is None:
                if where.kind == "file":
                    raise ResourceUnavailable(f"file: weights file {str(where.path)!r} does not exist")
                raise where.repo.unavailable(_how(model_name)) if where.repo is not None else \
                    ResourceUnavailable(f"model {model_name!r}: weights not found at {where.path}")
            if where.kind in ("hub-model", "local-dir"):
                model = create(f"{_LOCAL_PREFIX}{local}", pretrained=use_weights,
                               input_size=params["input_size"])
            else:
                model = create(model_name, pretrained=True, input_size=params["input_size"], file=str(local),
                               num_classes=where.num_classes)
            meta["weights"] = str(local) if use_weights else "random"
            if where.repo is not None:
                meta["hub"] = {"repo": where.repo.repo_id, "revision": snapshot_revision(local)}
        return source_model(model, pretrained=use_weights,
                            data_config=data_config(model, params["input_size"]), meta=meta)


def _torch_hub_file(url: str | None) -> Path | None:
    """Where timm's URL downloads land: torch hub's checkpoint cache."""
    if not url:
        return None
    import os
    from urllib.parse import urlparse

    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(TimmSource())
