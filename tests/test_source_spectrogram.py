"""The `spectrogram` source: timm models on log-mel images of audio, random or from a
local weights file, through the kit and end to end on synthetic tones."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import AudioInput, Env, Waveform
from tlbench.errors import ParamError
from tlbench.params import resolve_params
from tlbench.testing import check_source

from test_source_hf_audio import SHORT, run_suite

RANDOM = {"model": "test_resnet", "pretrained": False, "input_size": 32}


def source():
    from tlbench_builtin.spectrogram_source import SpectrogramSource

    return SpectrogramSource()


def params(**given):
    return resolve_params(source().params, given, "test")


def test_random_and_file_weights_pass_the_kit(resnet_file, tmp_path, one_torch_thread):
    random = check_source("spectrogram", RANDOM, cache_dir=tmp_path)
    assert random.modality == "audio" and random.audio == AudioInput(16000, 1.0) and not random.pretrained
    loaded = check_source("spectrogram", {"model": "test_resnet", "file": resnet_file, "input_size": 32},
                          cache_dir=tmp_path)
    assert loaded.pretrained and loaded.meta["weights"] == resnet_file
    assert loaded.meta["spectrogram"]["n_mels"] == 64 and loaded.meta["spectrogram"]["size"] == [32, 32]


def test_a_tone_lights_its_own_row_low_frequencies_at_the_bottom(cache_dir):
    built = source().build(params(**RANDOM), Env(cache_dir=cache_dir))
    t = np.arange(16000) / 16000
    rows = [int(built.encode.image(np.sin(2 * np.pi * hz * t)).mean(axis=1).argmax()) for hz in (300, 3000)]
    assert rows[0] > rows[1]  # the higher tone is nearer the top
    batch = built.encode([Waveform(np.sin(2 * np.pi * 300 * t).astype(np.float32), 16000)])
    assert tuple(batch.shape) == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="audio at 8000 Hz given to a source that takes 16000 Hz"):
        built.encode([Waveform(np.zeros(8000, np.float32), 8000)])


def test_its_baselines_are_its_own():
    from tlbench_builtin.timm_source import TimmSource

    assert source().network is None
    architecture = source().architecture(params(**RANDOM))
    assert architecture["spectrogram"] == {"rate": 16000, "seconds": 1.0, "n_mels": 64, "hop": 160, "n_fft": 400}
    assert architecture != TimmSource().architecture(resolve_params(TimmSource.params, RANDOM, "test"))
    assert source().capabilities(params(**RANDOM)).modality == "audio"


@pytest.mark.parametrize("given, message", [
    ({"hop": 512}, "hop: 512 samples is longer than the window"),
    ({"n_mels": 256}, "n_mels: 256 mel filters over 201 frequency bins"),
    ({"seconds": 0.01}, "seconds: 0.01 s is shorter than one window"),
])
def test_settings_that_cannot_make_an_image_are_refused(given, message, tmp_path):
    with pytest.raises(ParamError, match=message):
        source().check(params(**RANDOM, **given), Env(cache_dir=tmp_path))


def test_spectrograms_run_end_to_end_beside_their_baseline(resnet_file, tmp_path, monkeypatch, cache_dir,
                                                           one_torch_thread):
    code, records = run_suite(tmp_path, monkeypatch, f"""
        [suite]
        name = "spectrogram"
        seeds = [0]
        device = "cpu"
        plugins = ["tones_plugin"]

        [[sources]]
        id = "file"
        plugin = "spectrogram"
        model = "test_resnet"
        file = "{resnet_file}"
        input_size = 32
        seconds = 0.5

        [[targets]]
        id = "tones"
        plugin = "tones"

        [[strategies]]
        id = "lp"
        plugin = "linear-probe"

        [[strategies]]
        id = "ft"
        plugin = "full-finetune"
        {SHORT}
        """)
    assert code == 0
    assert set(records) == {("file", "lp"), ("file", "ft"), ("file", "scratch-ft")}
    for record in records.values():
        assert record["status"] == "ok"
        audio = record["details"]["source"]["audio"]
        assert audio["takes"]["seconds"] == 0.5 and audio["padded"] == audio["examples"] == 24
    assert records["file", "scratch-ft"]["details"]["source"]["weights"] == "random"
