"""The `hf` source's speech encoders (wav2vec 2.0, HuBERT, WavLM, Whisper's encoder), from
tiny local folders: conformance, pooling, layer groups and layer weighting, and every
strategy family run end to end on synthetic tones through `tlbench run`."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from tlbench.api import AudioInput, Env, Waveform
from tlbench.errors import ParamError
from tlbench.params import resolve_params
from tlbench.testing import check_source

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
             conv_stride=(10, 8), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
             vocab_size=8)
"""A wav2vec 2.0-family encoder small enough to train in a second: 80 samples a frame."""

TONES_PLUGIN = '''
"""A tiny audio target: tones of three pitches (with noise), 8 kHz, some in stereo."""
import numpy as np

import tlbench
from tlbench.api import Split, Splits, Target, TargetData, Waveform
from tlbench.params import Param

HZ = (300.0, 900.0, 2400.0)


class TonesData(TargetData):
    modality = "audio"

    def __init__(self, per_class):
        rng = np.random.default_rng(0)
        self.examples, labels = [], []
        for label, hz in enumerate(HZ):
            for i in range(per_class):
                n = int(8000 * rng.uniform(0.2, 0.3))
                t = np.arange(n) / 8000
                wave = 0.5 * np.sin(2 * np.pi * hz * (1 + 0.03 * rng.standard_normal()) * t)
                wave = wave + 0.05 * rng.standard_normal(n)
                if i % 2:
                    wave = np.stack([wave, 0.5 * wave])
                self.examples.append(Waveform(wave.astype(np.float32), 8000))
                labels.append(label)
        self.labels = np.asarray(labels)
        self.num_classes, self.class_names = len(HZ), [f"{int(hz)}hz" for hz in HZ]

    def splits(self, seed):
        rng = np.random.default_rng(seed)
        parts = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label)).tolist()
            parts["train"] += members[:4]
            parts["val"] += members[4:6]
            parts["test"] += members[6:]
        return Splits(**{name: Split([self.examples[i] for i in ix], self.labels[ix]) for name, ix in parts.items()})


class Tones(Target):
    name = "tones"
    version = "1"
    description = "tones of three pitches"
    params = {"per_class": Param(int, 8, "clips per class", min=8)}

    def modality(self, params):
        return "audio"

    def load(self, params, env):
        return TonesData(params["per_class"])


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(Tones())
'''


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Tiny wav2vec 2.0 and HuBERT (group norm, no attention mask), WavLM (layer norm,
    attention mask) and Whisper (1-second chunks) folders, saved with save_pretrained."""
    from transformers import (HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model,
                              WavLMConfig, WavLMModel, WhisperConfig, WhisperFeatureExtractor, WhisperModel)
    from transformers.utils import logging

    logging.set_verbosity_error()
    root = tmp_path_factory.mktemp("speech")
    whisper = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                            max_source_positions=50, max_target_positions=16, vocab_size=16, pad_token_id=0,
                            bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None,
                            suppress_tokens=None)
    made = {"wav2vec2": (Wav2Vec2Model(Wav2Vec2Config(**SMALL)), Wav2Vec2FeatureExtractor()),
            "hubert": (HubertModel(HubertConfig(**SMALL)), Wav2Vec2FeatureExtractor()),
            "wavlm": (WavLMModel(WavLMConfig(**SMALL, feat_extract_norm="layer", do_stable_layer_norm=True,
                                             num_buckets=32, max_bucket_distance=64)),
                      Wav2Vec2FeatureExtractor(return_attention_mask=True)),
            "whisper": (WhisperModel(whisper), WhisperFeatureExtractor(feature_size=16, chunk_length=1))}
    folders = {}
    for name, (model, extractor) in made.items():
        folders[name] = root / name
        model.save_pretrained(folders[name])
        extractor.save_pretrained(folders[name])
    return folders


def source():
    from tlbench_builtin.hf_source import HFSource

    return HFSource()


def params(**given):
    return resolve_params(source().params, given, "test")


@pytest.mark.parametrize("name, weighting", [("wav2vec2", "last"), ("hubert", "weighted"), ("wavlm", "weighted"),
                                             ("whisper", "last")])
def test_speech_encoders_pass_the_kit(speech, name, weighting, one_torch_thread, tmp_path):
    model = check_source("hf", {"model": str(speech[name]), "layer_weighting": weighting}, cache_dir=tmp_path)
    assert model.modality == "audio" and model.feature_dim == 32 and model.audio.rate == 16000
    assert model.audio.seconds == (1.0 if name == "whisper" else None)
    assert source().capabilities(params(model=str(speech[name]))).modality == "audio"
    # the conv feature encoder first, then what leads into the transformer, then its layers
    prefix = "model.conv" if name == "whisper" else "model.feature_extractor."
    assert all(n.startswith(prefix) for n in model.layer_groups[0])
    stack = "model.layers." if name == "whisper" else "model.encoder.layers."
    assert all(n.startswith(f"{stack}{i}.") for i, group in enumerate(model.layer_groups[2:4]) for n in group
               if n != "layer_weights")
    if weighting == "weighted":
        assert model.layer_groups[-1][-1] == "layer_weights" and model.meta["layer_weights"] == [0.333333] * 3


def test_pooling_is_the_mean_over_the_frames_that_hold_audio(speech, one_torch_thread, cache_dir):
    built = source().build(params(model=str(speech["wavlm"])), Env(cache_dir=cache_dir))
    built.backbone.eval()
    rng = np.random.default_rng(0)
    short, long = (Waveform((0.1 * rng.standard_normal(n)).astype(np.float32), 16000) for n in (2400, 4000))
    with torch.no_grad():
        pooled = built.backbone(built.encode([short, long]))
        hidden = built.backbone.model(**built.encode([short])).last_hidden_state
    frames = int(built.backbone.model._get_feat_extract_output_lengths(torch.tensor(2400)))
    assert hidden.shape[1] == frames
    torch.testing.assert_close(pooled[0], hidden[0].mean(0), atol=1e-5, rtol=1e-4)


def test_a_weighted_source_gives_its_layers_unmixed_and_takes_a_mix(speech, one_torch_thread, cache_dir):
    built = source().build(params(model=str(speech["hubert"]), layer_weighting="weighted"), Env(cache_dir=cache_dir))
    assert built.mixed_layers == 3
    built.backbone.eval()
    rng = np.random.default_rng(1)
    clips = [Waveform((0.1 * rng.standard_normal(n)).astype(np.float32), 16000) for n in (2400, 4000, 2400)]
    inputs = built.encode(clips)
    built.backbone.set_layer_mix([0.2, 0.5, 0.3])
    with torch.no_grad():
        layers = built.backbone.forward_layers(inputs)
        pooled = built.backbone(inputs)
    assert tuple(layers.shape) == (3, 3, built.feature_dim)
    torch.testing.assert_close(pooled, torch.einsum("l,nlf->nf", torch.tensor([0.2, 0.5, 0.3]), layers),
                               atol=1e-5, rtol=1e-4)
    assert built.backbone.mix() == pytest.approx([0.2, 0.5, 0.3], abs=1e-6)


def test_the_probe_learns_the_mix_from_cached_layer_features(speech, one_torch_thread, cache_dir):
    """The linear probe on a weighted source reads every layer's pooled features (cached: a
    second run extracts nothing), learns the mix with the backbone frozen, and leaves it
    in the model it returns (the only backbone state it changed)."""
    from tlbench.testing import check_strategy

    namespace: dict = {}
    exec(TONES_PLUGIN, namespace)
    tones = (namespace["Tones"](), {})
    weighted = ("hf", {"model": str(speech["hubert"]), "layer_weighting": "weighted"})
    first = check_strategy("linear-probe", {"max_iter": 50}, source=weighted, target=tones, cache_dir=cache_dir)
    assert first.record["details"]["feature_cache"]["misses"] > 0
    again = check_strategy("linear-probe", {"max_iter": 50}, source=weighted, target=tones, cache_dir=cache_dir,
                           withheld_labels_unseen=False, protocol=False)
    assert again.record["details"]["feature_cache"] == {"hits": first.record["details"]["feature_cache"]["misses"],
                                                         "misses": 0}
    assert again.changed == {"layer_weights": 3}
    mix = again.result.info["layer_mix"]["weights"]
    assert mix == first.result.info["layer_mix"]["weights"]
    assert again.result.model.backbone.mix() == pytest.approx(mix, abs=1e-6)


def test_whisper_pools_the_frames_before_its_padding(speech, one_torch_thread, cache_dir):
    built = source().build(params(model=str(speech["whisper"])), Env(cache_dir=cache_dir))
    tone = np.sin(np.arange(4000) / 3).astype(np.float32)
    inputs = built.encode([Waveform(np.pad(tone, (0, 12000)), 16000)])
    assert tuple(inputs["input_features"].shape) == (1, 16, 100) and inputs["lengths"].tolist() == [25]
    with pytest.raises(ParamError, match="seconds: Whisper's encoder takes exactly 1 s"):
        source().build(params(model=str(speech["whisper"]), seconds=2.0), Env(cache_dir=cache_dir))


def test_wavlm_attention_through_its_projections_is_transformers_own(speech, one_torch_thread):
    from transformers import WavLMModel

    from tlbench_builtin.hf_audio import route_wavlm_attention

    original = WavLMModel.from_pretrained(speech["wavlm"]).eval()
    routed = WavLMModel.from_pretrained(speech["wavlm"]).eval()
    assert route_wavlm_attention(routed) == 2
    values = torch.randn(2, 3200)
    mask = torch.ones(2, 3200, dtype=torch.long)
    mask[1, 2000:] = 0
    with torch.no_grad():
        expected = original(values, attention_mask=mask).last_hidden_state
        got = routed(values, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_speech_parameters_are_refused_for_other_models(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ParamError, match="layer_weighting: only for speech encoders"):
        source().check(params(model=str(folder), layer_weighting="weighted"), Env(cache_dir=tmp_path))
    assert source().architecture(params(model=str(folder))).keys() == {"model", "revision", "pooling", "max_length"}


# ---------------------------------------------------------------------------- end to end


def run_suite(root, monkeypatch, text: str) -> dict:
    from tlbench.cli import main

    (root / "tones_plugin.py").write_text(TONES_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    suite = root / "suite.toml"
    suite.write_text(textwrap.dedent(text), encoding="utf-8")
    code = main(["run", str(suite), "--executor", "inline", "--out", str(root / "out")])
    records = [json.loads(p.read_text()) for p in (root / "out" / "runs").glob("*.json")]
    return code, {(r["spec"]["source"]["id"], r["spec"]["strategy"]["id"]): r for r in records}


SHORT = "epochs = 2\nbatch_size = 8\nlr = 0.003\n"


def test_every_strategy_family_runs_on_wav2vec2(speech, tmp_path, monkeypatch, cache_dir, one_torch_thread):
    strategies = "".join(f'[[strategies]]\nid = "{s}"\nplugin = "{s}"\n{"" if s == "linear-probe" else SHORT}\n'
                         for s in ("linear-probe", "partial-finetune", "full-finetune", "lora", "bitfit"))
    code, records = run_suite(tmp_path, monkeypatch, f"""
        [suite]
        name = "hf-audio"
        seeds = [0]
        device = "cpu"
        plugins = ["tones_plugin"]

        [[sources]]
        id = "w2v"
        plugin = "hf"
        model = "{speech['wav2vec2']}"

        [[targets]]
        id = "tones"
        plugin = "tones"

        {strategies}""")
    assert code == 0
    assert {recipe for _, recipe in records} == {"linear-probe", "partial-finetune", "full-finetune", "lora",
                                                 "bitfit", "scratch-full-finetune"}
    for (_, recipe), record in records.items():
        assert record["status"] == "ok", (recipe, record.get("error"))
        audio = record["details"]["source"]["audio"]
        assert audio["takes"] == {"rate": 16000, "seconds": None, "crop": "start", "channels": 1}
        assert audio["resampled"] == audio["examples"] == 24 and audio["mixed_down"] == 12
    scratch = records["w2v", "scratch-full-finetune"]
    assert scratch["spec"]["baseline"] and scratch["details"]["source"]["weights"] == "random"
    lora = records["w2v", "lora"]["details"]["strategy"]["resolved"]
    assert lora["target_modules"] == ["q_proj", "v_proj"] and lora["adapted_layers"] == 4


def test_layer_weights_train_with_every_strategy_and_are_recorded(speech, tmp_path, monkeypatch, cache_dir,
                                                             one_torch_thread):
    code, records = run_suite(tmp_path, monkeypatch, f"""
        [suite]
        name = "hf-audio-weighted"
        seeds = [0]
        device = "cpu"
        plugins = ["tones_plugin"]

        [baseline]
        enabled = false

        [[sources]]
        id = "hubert"
        plugin = "hf"
        model = "{speech['hubert']}"
        layer_weighting = "weighted"

        [[sources]]
        id = "whisper"
        plugin = "hf"
        model = "{speech['whisper']}"

        [[sources]]
        id = "wavlm"
        plugin = "hf"
        model = "{speech['wavlm']}"

        [[targets]]
        id = "tones"
        plugin = "tones"

        [[strategies]]
        id = "ft"
        plugin = "full-finetune"
        {SHORT}
        [[strategies]]
        id = "lora"
        plugin = "lora"
        {SHORT}
        [[strategies]]
        id = "lp"
        plugin = "linear-probe"
        """)
    assert code == 0
    # WavLM's attention runs through the adapted projections; Whisper's encoder takes LoRA too
    assert all(records[source, recipe]["status"] == "ok" for source in ("wavlm", "whisper")
               for recipe in ("ft", "lora", "lp"))
    audio = records["whisper", "lp"]["details"]["source"]["audio"]
    assert audio["takes"]["seconds"] == 1.0 and audio["padded"] == audio["examples"]
    tuned = records["hubert", "ft"]
    assert tuned["status"] == "ok"
    weights = tuned["details"]["source"]["layer_weights"]
    assert len(weights) == 3 and sum(weights) == pytest.approx(1, abs=1e-5) and weights != [0.333333] * 3
    assert tuned["details"]["source"]["layerdrop"].startswith("off (was 0.1)")
    probed = records["hubert", "lp"]  # SUPERB's protocol: the mix learnt with the backbone frozen
    assert probed["status"] == "ok"
    mix = probed["details"]["strategy"]["layer_mix"]
    assert len(mix["weights"]) == 3 and sum(mix["weights"]) == pytest.approx(1, abs=1e-5)
    assert mix["weights"] != [0.333333] * 3 and mix["loss_last"] < mix["loss_first"]
    assert probed["details"]["source"]["layer_weights"] == pytest.approx(mix["weights"], abs=1e-5)
    adapted = records["hubert", "lora"]  # adapters train the mix with the head, as SUPERB's downstream does
    assert adapted["status"] == "ok" and adapted["details"]["source"]["layer_weights"] != [0.333333] * 3


def test_training_a_weighted_backbone_with_its_mix_frozen_is_refused_in_one_line(speech, cache_dir):
    built = source().build(params(model=str(speech["hubert"]), layer_weighting="weighted"), Env(cache_dir=cache_dir))
    built.backbone.layer_weights.requires_grad_(False)
    built.backbone.train()
    inputs = built.encode([Waveform(np.zeros(2400, np.float32), 16000)])
    with pytest.raises(ParamError, match="keeps the source's layer weights frozen"):
        built.backbone(inputs)


def test_the_speech_source_takes_what_the_extractor_says(speech, cache_dir):
    built = source().build(params(model=str(speech["hubert"]), seconds=0.5), Env(cache_dir=cache_dir))
    assert built.audio == AudioInput(16000, 0.5)
    assert source().architecture(params(model=str(speech["hubert"]), seconds=0.5))["seconds"] == 0.5
    with pytest.raises(ValueError, match="audio at 8000 Hz given to a source that takes 16000 Hz"):
        built.encode([Waveform(np.zeros(800, np.float32), 8000)])


def test_a_folder_of_8khz_stereo_wavs_runs_through_a_16khz_mono_wav2vec2(speech, tmp_path, cache_dir,
                                                                         one_torch_thread):
    """The issue's case, end to end through `tlbench run`: 16-bit stereo WAVs at 8 kHz in
    class folders, a wav2vec 2.0 that takes 16 kHz mono; every record states the resampling."""
    from test_target_audiofolder import make_audio

    from tlbench.cli import main

    make_audio(tmp_path / "clips", {"low": 8, "high": 8}, rate=8000, channels=2)
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent(f"""
        [suite]
        name = "wav-folder"
        seeds = [0]
        device = "cpu"

        [[sources]]
        id = "w2v"
        plugin = "hf"
        model = "{speech['wav2vec2']}"

        [[targets]]
        id = "clips"
        plugin = "audiofolder"
        path = "clips"
        shots = 3
        val_shots = 2

        [[strategies]]
        id = "lp"
        plugin = "linear-probe"
        """), encoding="utf-8")
    assert main(["run", str(suite), "--jobs", "1", "--out", str(tmp_path / "out")]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*.json")]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)  # the probe and its baseline
    for record in records:
        audio = record["details"]["source"]["audio"]
        assert audio["takes"] == {"rate": 16000, "seconds": None, "crop": "start", "channels": 1}
        n = audio["examples"]  # every example of the run's splits
        assert n >= 10 and audio["input_rates"] == {"8000": n} and audio["input_channels"] == {"2": n}
        assert audio["resampled"] == audio["mixed_down"] == n
        assert record["details"]["target"]["modality"] == "audio"
