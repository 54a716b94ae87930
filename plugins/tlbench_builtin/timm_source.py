"""Source `timm`: any timm architecture, pretrained from the hub or a local file, or random.

Where the weights come from, in order: `file` (a local .safetensors, or a .pth/.bin
loaded with weights_only=True); a ``local-dir:`` model folder; the Hugging Face hub
(timm's own ``timm/<model>.<tag>`` repositories, or an ``hf-hub:org/name`` model), read
from the local hub cache that ``HF_HOME`` names. Hub weights are fetched once, in
`prepare` (scheduled before any run of the source); builds load the cached file and
never go online. A
model that is not cached while the hub is off ends the suite before any run with one
line saying how to provide it. A hub snapshot is taken as cached only when the
files it needs are all there at the sizes of the snapshot's own listing (`hub_cache`).

`file` and a ``local-dir:`` folder are paths (`Param.path`): relative ones resolve
against the suite's folder, and they stay out of run identities, which the weights'
sha256 (the fingerprint) identifies instead.

Random initialisations are timm's: a source that builds its networks with
`timm.create_model(model, pretrained=False)` at an input size declares the `network`
namespace "timm" and states its architecture as `timm_architecture` does, so a `timm`
source with `pretrained = false` and a source trained on the spot on the same
architecture share one from-scratch baseline.
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


def timm_architecture(model: str, input_size: int | None) -> dict:
    """The network `timm.create_model(model, pretrained=False)` builds at `input_size`, as
    every source in the "timm" `network` namespace states it: the architecture without
    its pretrained tag (a tag names weights); a ``local-dir:`` folder by the sha256 of its
    config.json (what timm builds the network from), never by its path."""
    if model.startswith(_LOCAL_PREFIX):
        config = Path(model[len(_LOCAL_PREFIX):]) / "config.json"
        if config.is_file():
            import hashlib

            model = f"{_LOCAL_PREFIX}config-sha256:{hashlib.sha256(config.read_bytes()).hexdigest()}"
    elif not model.startswith(_HUB_PREFIXES):
        model = model.split(".")[0]
    return {"model": model, "input_size": input_size}


def _weights_in(files) -> str | None:
    """The weights file timm reads from a repository listing this file list."""
    return next((name for name in _HUB_WEIGHTS if name in files), None)


class TimmSource(Source):
    name = "timm"
    version = "2"
    description = "timm image models: hub weights (HF cache), a local weights file, or random init"
    network = "timm"
    params = {
        "model": Param(str, help="timm architecture or pretrained tag (resnet50.a1_in1k), "
                                 "hf-hub:org/name, or local-dir:<folder> (relative to the suite's folder)",
                       path="local", path_prefix=_LOCAL_PREFIX),
        "pretrained": Param(bool, True, "load pretrained weights (from `file` when given)"),
        "file": Param(str, None, "local weights file (.safetensors, .pth, .bin) instead of the hub, relative to "
                                 "the suite's folder", path="local"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
    }

    def architecture(self, params: dict) -> dict:
        return timm_architecture(params["model"], params["input_size"])

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
        """The local weights file or folder, if it is on disk (a hub snapshot: whole for
        the files timm reads, by the snapshot's own listing when there is one)."""
        if where.kind in ("file", "local-dir", "url"):
            return where.path if where.path is not None and where.path.exists() else None
        snapshot = where.repo.cached_snapshot()
        if snapshot is None or self._missing(where):
            return None
        listing = where.repo.listing()
        weights = _weights_in(listing) if listing is not None else \
            next((name for name in _HUB_WEIGHTS if (snapshot / name).is_file()), None)
        if weights is None or not (snapshot / weights).is_file():
            return None
        if where.kind == "hub":
            return snapshot / weights
        return snapshot if (snapshot / "config.json").is_file() else None  # hub-model: config.json and weights

    @staticmethod
    def _missing(where: WeightsLocation) -> list[str]:
        """What a cached hub snapshot lacks of the files timm reads, by its listing."""
        snapshot = where.repo.cached_snapshot()
        if snapshot is None:
            return []
        config = ["config.json"] if where.kind == "hub-model" else []
        return where.repo.missing(snapshot, lambda files: [name for name in (*config, _weights_in(files))
                                                          if name in files])

    # ------------------------------------------------------------------ the contract

    def check(self, params: dict, env: Env) -> None:
        from .hub_cache import hub_online, offline_setting

        model = params["model"]
        if not model.startswith((*_HUB_PREFIXES, _LOCAL_PREFIX)):
            _check_timm_name(model, env.cache_dir)
        if params["file"] and not params["pretrained"]:
            raise ParamError("file: a weights file is given but pretrained = false would never load it; "
                             "remove one of the two")
        if not params["pretrained"] and not model.startswith((*_HUB_PREFIXES, _LOCAL_PREFIX)):
            return  # a random architecture needs nothing from anywhere
        where = self._location(params)
        if where.kind == "file" and where.path.is_dir():
            raise ResourceUnavailable(f"file: {_shown(where.path)} is a directory; expected a weights file "
                                      f"(.safetensors, .pth or .bin)")
        if self._cached_weights(where) is not None:
            return
        if where.kind == "file":
            raise ResourceUnavailable(f"file: weights file {_shown(where.path)} does not exist")
        if where.kind == "local-dir":
            raise ResourceUnavailable(f"model: no model folder {_shown(where.path)} "
                                      f"(expected config.json and model.safetensors or pytorch_model.bin)")
        if where.kind == "url":
            if offline_setting():
                raise ResourceUnavailable(f"model {model!r}: its weights ({where.url}) are not in torch hub's "
                                          f"cache ({where.path.parent}) and {offline_setting()} is set; "
                                          f"download them once with network or {_how(model)}")
            return
        if not hub_online():
            raise where.repo.unavailable(_how(model), self._missing(where))

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
                raise ResourceUnavailable(f"file: {_shown(where.path)} cannot be loaded as weights "
                                          f"(safetensors, or a torch pickle with weights_only=True): "
                                          f"{type(exc).__name__}: {first_line(exc, 200)}"
                                          ) from None
            return
        if self._cached_weights(where) is not None:
            return
        env.log(f"timm: downloading the weights of {model!r}")
        if where.kind in ("hub", "hub-model"):
            self._download_hub(where, model)
        elif where.kind == "url":
            from .timm_models import create

            try:
                create(model, pretrained=True)  # timm's own downloader fills torch hub's cache
            except Exception as exc:
                raise ResourceUnavailable(f"model {model!r}: downloading {where.url} failed "
                                          f"({type(exc).__name__}); {_how(model)}") from None

    @staticmethod
    def _download_hub(where: WeightsLocation, model: str) -> None:
        """The files timm reads (the weights, and a hub-model's config.json), as a snapshot
        download, which also caches the snapshot's listing that later checks read."""
        repo = where.repo
        files = repo.remote_files(_how(model))
        weights = _weights_in(files)
        if weights is None:
            raise ResourceUnavailable(f"model {model!r}: {repo.describe()} has none of {', '.join(_HUB_WEIGHTS)}")
        needed = [weights]
        if where.kind == "hub-model":
            if "config.json" not in files:
                raise ResourceUnavailable(f"model {model!r}: the repository has no config.json with "
                                          f"model.safetensors or pytorch_model.bin, so timm cannot load it")
            needed.insert(0, "config.json")
        repo.download_snapshot(_how(model), allow_patterns=needed)

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
                    raise ResourceUnavailable(f"file: weights file {_shown(where.path)} does not exist")
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


def _shown(path: Path) -> str:
    """A path as messages show it: absolute, so the file tried is never in doubt."""
    import os

    return repr(os.path.abspath(path))


def _check_timm_name(model: str, cache_dir) -> None:
    """A model name timm's registry knows: the architecture, and the pretrained tag when
    one is given (timm refuses an unknown tag even for random weights). Known names are
    read from the cached listing (`timm_names`); only a refusal imports timm, to say why."""
    from .timm_names import is_known

    if is_known(model, cache_dir):
        return
    import timm
    from timm.models import get_pretrained_cfg

    from tlbench.params import closest

    arch, _, tag = model.partition(".")
    if not timm.is_model(arch):
        raise ResourceUnavailable(f"model: timm has no architecture {arch!r}{closest(arch, timm.list_models())}")
    if not tag:
        return
    try:
        get_pretrained_cfg(model)
    except RuntimeError:
        tags = [name.partition(".")[2] for name in timm.list_pretrained(f"{arch}.*")]
        raise ResourceUnavailable(f"model: timm has no pretrained tag {tag!r} for {arch!r}{closest(tag, tags)}; "
                                  f"its tags: {', '.join(tags) or 'none'}") from None


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
