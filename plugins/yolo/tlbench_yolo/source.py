"""Source `yolo`: an ultralytics YOLO detector (YOLOv8, YOLO11, YOLO26 ...).

Transfer from a YOLO detector keeps what it learnt about finding objects: the backbone
and neck (every layer up to the Detect head) are the source's backbone, which
strategies freeze, fine-tune or adapt layer by layer; the Detect head comes as the
`detection` task's head (`SourceModel.task_heads`), a fresh copy per run with its box
(and DFL) branch kept and only the class-specific branch (the last convolution of each
level's `cv3`) new for the target's classes, its biases initialised by ultralytics'
own `Detect.bias_init`. The loss is ultralytics' own (`v8DetectionLoss`, or `E2ELoss`
for end-to-end heads such as YOLO26's: what `DetectionModel.init_criterion` picks),
the decoding and NMS too; the mAP is tlbench's (faster-coco-eval), so YOLO's figures sit
in the same leaderboard as every other detection source's. See `tlbench_yolo.model`.

Models: `model` names an ultralytics config (``yolov8n.yaml``, ``yolo11s.yaml``: a
random network, so ``pretrained = false`` or a `file`) or an ultralytics weights asset
(``yolov8n.pt``: COCO-trained). Weights come from `file` (an ultralytics checkpoint, or
a state dict of the DetectionModel as .pt/.pth/.safetensors), else from where
ultralytics keeps its downloads (its settings' ``weights_dir``, or the working folder,
as ``YOLO("yolov8n.pt")`` leaves them). They are downloaded (by ultralytics'
`attempt_download_asset`) only in `prepare`, when the network may be used, never in a
build; offline (``YOLO_OFFLINE`` or ``HF_HUB_OFFLINE``) and missing, the suite ends
before any run with one line saying how to provide them. An ultralytics checkpoint is a
pickle, which ultralytics' loader unpickles: load only checkpoints you trust.

Images are given whole, resized to `input_size` square (bilinear, the aspect ratio not
kept; ultralytics letterboxes instead) as RGB in [0, 1], YOLO's normalisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Source, SourceCapabilities, SourceModel
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.params import Param

CONFIG_SUFFIXES = (".yaml", ".yml")
WEIGHTS_SUFFIXES = (".pt",)
_TRUE = {"1", "true", "yes", "on"}


def offline_setting() -> str | None:
    """The environment variable that keeps downloads off, if one does: ultralytics' own
    ``YOLO_OFFLINE``, or the hub's, which tlbench's other sources obey."""
    for name in ("YOLO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def is_config(model: str) -> bool:
    return model.lower().endswith(CONFIG_SUFFIXES)


def config_name(model: str) -> str:
    """The ultralytics config of a model name: ``yolov8n.pt`` -> ``yolov8n.yaml``."""
    return model if is_config(model) else Path(model).stem + ".yaml"


def weights_dir() -> Path:
    """ultralytics' weights folder (its settings' ``weights_dir``)."""
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"]).expanduser()


def cached_weights(model: str) -> Path | None:
    """Where ultralytics keeps the asset `model` (``yolov8n.pt``), if it is on disk: the
    working folder (where ``YOLO("yolov8n.pt")`` downloads) or its ``weights_dir``."""
    for path in (Path(model), weights_dir() / model):
        if path.is_file():
            return path
    return None


def _shown(path: Path) -> str:
    return repr(os.path.abspath(path))


class YoloSource(Source):
    name = "yolo"
    version = "1"
    description = ("ultralytics YOLO detectors (YOLOv8, YOLO11, YOLO26): backbone and neck transfer, Detect head "
                   "with a fresh class branch; ultralytics' loss and NMS")
    params = {
        "model": Param(str, help="an ultralytics config (yolov8n.yaml: random weights) or weights asset "
                                 "(yolov8n.pt: COCO-trained)"),
        "file": Param(str, None, "local weights instead of ultralytics' weights folder: an ultralytics "
                                 "checkpoint (.pt) or a state dict of the model (.pt, .pth, .safetensors), relative "
                                 "to the suite's folder", path="local"),
        "pretrained": Param(bool, True, "load the weights (from `file` when given)"),
        "input_size": Param(int, 640, "square input size, a multiple of 32: images are resized to it whole",
                            min=32),
    }

    def architecture(self, params: dict) -> dict:
        return {"model": config_name(params["model"]), "input_size": params["input_size"]}

    def capabilities(self, params: dict) -> SourceCapabilities:
        return SourceCapabilities(modality="image", representations=("pooled", "feature_maps"), source_head=False)

    def _weights_path(self, params: dict) -> Path | None:
        """The weights file the params point at, if it is on disk."""
        if params["file"]:
            path = Path(params["file"]).expanduser()
            return path if path.is_file() else None
        return cached_weights(params["model"])

    def check(self, params: dict, env: Env) -> None:
        model = params["model"]
        if "/" in model or "\\" in model or not model.lower().endswith(CONFIG_SUFFIXES + WEIGHTS_SUFFIXES):
            raise ParamError(f"model: expected an ultralytics config (yolov8n.yaml) or weights asset name "
                             f"(yolov8n.pt), got {model!r}; a local weights file goes in `file`")
        if params["input_size"] % 32:
            raise ParamError(f"input_size: YOLO's coarsest level has stride 32, so the input size must be a "
                             f"multiple of 32, got {params['input_size']}")
        if params["file"] and not params["pretrained"]:
            raise ParamError("file: a weights file is given but pretrained = false would never load it; "
                             "remove one of the two")
        if is_config(model) and params["pretrained"] and not params["file"]:
            raise ParamError(f"model: {model!r} is a config, whose network has random weights; set pretrained = "
                             f"false, or name weights (model = {Path(model).stem + '.pt'!r}, or file = <weights>)")
        if is_config(model) or not params["pretrained"]:
            self._check_config(config_name(model))
        if not params["pretrained"]:
            return
        if params["file"]:
            if not Path(params["file"]).expanduser().is_file():
                raise ResourceUnavailable(f"file: weights file {_shown(Path(params['file']))} does not exist")
            return
        if cached_weights(model) is None and offline_setting():
            raise ResourceUnavailable(f"model {model!r}: ultralytics' weights are not in its weights folder "
                                      f"({weights_dir()}) nor the working folder and {offline_setting()} is set; "
                                      f"download them once with network or set file = <a local weights file>")

    @staticmethod
    def _check_config(config: str) -> None:
        """A config ultralytics knows (shipped with it), when the network is built from one."""
        from ultralytics.nn.tasks import yaml_model_load

        try:
            yaml_model_load(config)
        except (FileNotFoundError, OSError) as exc:
            raise ParamError(f"model: ultralytics has no config {config!r} ({first_line(exc, 150)})") from None

    def fingerprint(self, params: dict, env: Env) -> str | None:
        from tlbench.hashing import file_sha256

        if not params["pretrained"]:
            return None
        if params["file"]:
            return "sha256:" + file_sha256(Path(params["file"]).expanduser())
        return f"ultralytics-asset:{params['model']}"

    def prepare(self, params: dict, env: Env) -> None:
        """The weights on disk (ultralytics' asset downloaded once into its weights folder) and loadable."""
        if not params["pretrained"]:
            return
        if params["file"] or cached_weights(params["model"]) is not None:
            self._checkpoint(params)
            return
        if offline_setting():
            self.check(params, env)  # raises the one-line refusal
        from ultralytics.utils.downloads import attempt_download_asset

        target = weights_dir() / params["model"]
        env.log(f"yolo: downloading ultralytics' weights {params['model']!r} into {target.parent}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            attempt_download_asset(str(target))
        except Exception as exc:
            raise ResourceUnavailable(f"model {params['model']!r}: downloading ultralytics' weights failed "
                                      f"({type(exc).__name__}); set file = <a local weights file>") from None
        if not target.is_file():
            raise ResourceUnavailable(f"model {params['model']!r}: ultralytics' weights could not be downloaded "
                                      f"to {target}; set file = <a local weights file>")
        self._checkpoint(params)

    def _checkpoint(self, params: dict):
        """(config, state dict) of the weights the params point at."""
        from .model import load_weights

        path = self._weights_path(params)
        if path is None:
            shown = Path(params["file"]).expanduser() if params["file"] else weights_dir() / params["model"]
            raise ResourceUnavailable(f"model {params['model']!r}: weights not found at {_shown(shown)}; download "
                                      f"them once with network or set file = <a local weights file>")
        try:
            return load_weights(path, config_name(params["model"]))
        except Exception as exc:
            raise ResourceUnavailable(f"file: {_shown(path)} cannot be loaded as YOLO weights (an ultralytics "
                                      f"checkpoint or a state dict): {type(exc).__name__}: "
                                      f"{first_line(exc, 200)}") from None

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from .model import detection_model, source_model

        use_weights = pretrained and params["pretrained"]
        meta = {"model": params["model"], "weights": "random"}
        if params["pretrained"] and self._weights_path(params) is not None:
            config, state = self._checkpoint(params)  # the checkpoint's own config, for the scratch twin too
        else:
            config, state = config_name(params["model"]), None
        network = detection_model(config)
        if use_weights:
            try:
                network.load_state_dict(state)
            except RuntimeError as exc:
                raise ResourceUnavailable(f"file: the weights do not fit ultralytics' {params['model']}: "
                                          f"{first_line(exc, 200)}") from None
            meta["weights"] = "file" if params["file"] else f"ultralytics-asset:{params['model']}"
        return source_model(network, params["input_size"], use_weights, meta)


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(YoloSource())
