"""Audio sources pretrained here (pretrain-speech, pretrain-spectrogram), end to end on
spoken digits: pretrained once per seed on some voices, transferred to others, each
against its own from-scratch baseline, the conditioning of the audio in every record."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tlbench.cli import main

VOICES = '["en+m1", "en+f2"]'
SUITE = f"""
[suite]
name = "audio-pretrained"
seeds = [0]
device = "cpu"

[[sources]]
id = "speech"
plugin = "pretrain-speech"
target = "spoken-digits"
target_params = {{ classes = [0, 1, 2], voices = {VOICES}, per_voice = 4, shots = 3, val_shots = 1 }}
seconds = 0.8
epochs = 2
batch_size = 8

[[sources]]
id = "cnn"
plugin = "pretrain-spectrogram"
model = "test_resnet"
input_size = 16
seconds = 0.8
target = "spoken-digits"
target_params = {{ classes = [0, 1, 2], voices = {VOICES}, per_voice = 4, shots = 3, val_shots = 1 }}
epochs = 2
batch_size = 8

[[targets]]
id = "other-voices"
plugin = "spoken-digits"
classes = [0, 1, 2]
voices = ["en-us+f3"]
per_voice = 4
shots = 2
val_shots = 1

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 4
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory, one_torch_thread):
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed (apt-get install espeak-ng)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the spoken-digits target")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("audio-pretrained")
    (root / "suite.toml").write_text(SUITE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLBENCH_CACHE_DIR", str(root / "cache"))
        assert main(["run", str(root / "suite.toml"), "--out", str(root / "out"), "--jobs", "1"]) == 0
    return [json.loads(p.read_text()) for p in sorted((root / "out" / "runs").glob("*.json"))]


def test_each_source_transfers_and_has_its_own_baseline(records):
    transfers = [r for r in records if not r["spec"]["baseline"]]
    baselines = [r for r in records if r["spec"]["baseline"]]
    assert {r["spec"]["source"]["id"] for r in transfers} == {"speech", "cnn"}
    assert len(transfers) == 4 and len(baselines) == 2  # one architecture each: two baselines
    assert all(r["status"] == "ok" and r["metrics"]["negative_transfer"] is not None for r in transfers)
    for record in transfers:
        pretraining = record["details"]["source"]["pretraining"]
        assert pretraining["seed"] == 0 and pretraining["epochs"] == 2


def test_records_state_how_the_audio_was_conditioned(records):
    for record in records:
        audio = record["details"]["source"]["audio"]
        assert audio["takes"]["rate"] == 16000 and audio["takes"]["seconds"] == 0.8
        assert audio["input_rates"] == {"22050": audio["examples"]} and audio["resampled"] == audio["examples"]


def test_the_speech_source_is_a_small_wav2vec2(records):
    speech = next(r for r in records if r["spec"]["source"]["id"] == "speech" and not r["spec"]["baseline"])
    assert speech["details"]["source"]["architecture"] == "Wav2Vec2Model"
    assert speech["details"]["source"]["weights"].startswith("<tlbench-cache>/pretrain/")
    assert speech["metrics"]["total_params"] < 500_000


def test_pretraining_does_not_depend_on_which_process_wrote_the_config_first(tmp_path, registry, one_torch_thread):
    """Two workers preparing two seeds race to write the shared configuration folder; the
    weights a seed gets must not depend on who won (nothing may draw from the seeded
    random generator on the way)."""
    from tlbench.api import Env
    from tlbench.params import resolve_params

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    item = registry.get("source", "pretrain-speech").item
    params = resolve_params(item.params, {
        "target": "spoken-digits", "epochs": 1, "batch_size": 8, "seconds": 0.5,
        "target_params": {"classes": [0, 1], "voices": ["en+m1"], "per_voice": 4, "shots": 2, "val_shots": 1}},
        "source")
    weights = []
    for name, written_before in (("fresh", False), ("written", True)):
        env = Env(cache_dir=tmp_path / name, registry=registry, log=lambda message: None, seed=0)
        if written_before:
            item._random_folder(params, env)
        item.prepare(params, env)
        folder = item._weights(env, item._data(params, env)[3])
        weights.append((folder / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]
