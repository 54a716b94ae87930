"""Source `timm`: any timm architecture, pretrained from the hub or a local file, or random."""

from __future__ import annotations

from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceModel
from tlbench.errors import ResourceUnavailable
from tlbench.params import Param


class TimmSource(Source):
    name = "timm"
    version = "1"
    description = "timm image models: hub weights (HF cache), a local weights file, or random init"
    params = {
        "model": Param(str, help="timm architecture or pretrained tag, e.g. resnet50.a1_in1k"),
        "pretrained": Param(bool, True, "load pretrained weights (from `file` when given)"),
        "file": Param(str, None, "local weights file (.safetensors, .pth, .bin) instead of the hub"),
        "input_size": Param(int, None, "square input size overriding the model's data config", min=8),
    }

    def architecture(self, params: dict) -> dict:
        return {"model": params["model"].split(".")[0], "input_size": params["input_size"]}

    def check(self, params: dict, env: Env) -> None:
        import timm

        arch = params["model"].split(".")[0].removeprefix("hf-hub:").removeprefix("hf_hub:")
        if not params["model"].startswith(("hf-hub:", "hf_hub:")) and not timm.is_model(arch):
            raise ResourceUnavailable(f"model: timm has no architecture {arch!r}")
        if params["file"] and not Path(params["file"]).expanduser().is_file():
            raise ResourceUnavailable(f"file: weights file {params['file']!r} does not exist")

    def fingerprint(self, params: dict, env: Env) -> str | None:
        if params["pretrained"] and params["file"]:
            from tlbench.hashing import file_sha256

            return "sha256:" + file_sha256(Path(params["file"]).expanduser())
        return None

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from .timm_models import create, data_config, source_model

        use_weights = pretrained and params["pretrained"]
        file = str(Path(params["file"]).expanduser()) if params["file"] else None
        model = create(params["model"], pretrained=use_weights, file=file)
        meta = {"model": params["model"], "weights": (file or "hub") if use_weights else "random"}
        return source_model(model, pretrained=use_weights, data_config=data_config(model, params["input_size"]),
                            meta=meta)


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(TimmSource())
