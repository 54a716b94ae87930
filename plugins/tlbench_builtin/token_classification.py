"""Task `token-classification`: a tag per word (named-entity recognition), scored by seqeval.

Why a task of its own: its examples are not texts but lists of words (CoNLL-2003's
``tokens``), its labels one tag id per word (``ner_tags``: B-PER, I-PER, O ...), and what
counts is whole entities, not words: a tagger that gets every word of "New York City"
right but one has found no entity. Subword models see sub-tokens, not words, so the
task is word-level (`Task.words`): the source encodes each example's words
(`SourceModel.encode_words`) and its backbone gives one vector per word, that of the
word's FIRST sub-token (the other sub-tokens of the word are read by the encoder but get
no label, as in BERT's own NER recipe). The head, the loss and the predictions are then
purely word-level and need no tokenizer.

Labels: per example, a 1-d integer array of tag ids (one per word), ids into the
target's class names, which are the tag strings. Head: dropout (`DROPOUT`) and one
linear layer on each word's vector. Loss: cross-entropy over the words that have a
vector. Predictions: per example, an int array of tag ids, one per word.

Words the model never sees — cut off by the source's maximum length (``max_length``),
or given no sub-token by its tokenizer — have no vector: they are left out of the loss
and predicted as the outside tag ('O'; class 0 when the tags have no 'O'), so seqeval
still gets one tag per word and an entity the model could not read counts as missed.

Metrics, by seqeval (the implementation CoNLL scores are reported with): entity-level
`f1` (the headline), `precision` and `recall` in seqeval's default mode, which is the
CoNLL-2000 ``conlleval`` script's (an I- tag without a B- still starts an entity);
`f1_strict`, entity F1 in seqeval's strict mode with the IOB2 scheme (an entity must
begin with B- and continue with I- of its type; None when the tags are not IOB2); and
`token_accuracy`, the share of words tagged right. The mode of each is in the metric's
description and in the record (``details.objective.seqeval``). A test checks every
number against seqeval called directly.
"""

from __future__ import annotations

import tlbench
from tlbench.api import MetricSpec, Objective, Task, TargetInfo

DROPOUT = 0.1
"""Dropout before the linear layer (BERT's classifier dropout)."""
OUTSIDE = "O"
IGNORE = -100
"""The loss target of words without a vector (and of padding)."""
CONLLEVAL = "default mode (mode=None): conlleval's rules"
STRICT = "strict mode (mode='strict', scheme=IOB2)"


def _as_tags(labels, what: str) -> list:
    """Labels as a list of 1-d int64 arrays, or ValueError naming the first bad one."""
    import numpy as np

    out = []
    for i, label in enumerate(labels):
        array = np.asarray(label)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise ValueError(f"{what}: example {i}: expected a list of integer tag ids (one per word), got "
                             f"shape {array.shape} of {array.dtype}")
        out.append(array.astype(np.int64))
    return out


def outside_index(class_names) -> int:
    """The class of words the model never saw: 'O', else class 0."""
    names = list(class_names)
    return names.index(OUTSIDE) if OUTSIDE in names else 0


def is_iob2(class_names) -> bool:
    """Whether every tag is 'O', 'B-<type>' or 'I-<type>' (what strict IOB2 scoring reads)."""
    return all(name == OUTSIDE or (name[:2] in ("B-", "I-") and len(name) > 2) for name in class_names)


def make_head(dim: int, num_classes: int):
    from torch import nn

    class WordHead(nn.Module):
        """Dropout and a linear layer on each word's vector; passes the word mask on."""

        def __init__(self):
            super().__init__()
            self.dropout = nn.Dropout(DROPOUT)
            self.classify = nn.Linear(dim, num_classes)

        def forward(self, features):
            hidden, mask = features
            return self.classify(self.dropout(hidden.float())), mask

    return WordHead()


class TokenClassificationObjective(Objective):
    def __init__(self, class_names: tuple[str, ...]):
        self.class_names = tuple(class_names)
        self.outside = outside_index(self.class_names)

    def head(self, source):
        if source.token_dim is None:
            raise ValueError("the token-classification head reads word vectors (forward_tokens), which this source "
                             "does not give")
        return make_head(source.token_dim, len(self.class_names))

    def targets(self, labels):
        """One int64 tensor of tag ids per example (row-wise: examples differ in length)."""
        import torch

        return [torch.from_numpy(tags) for tags in _as_tags(labels, "labels")]

    def loss(self, outputs, targets):
        import torch
        from torch.nn import functional as F

        logits, mask = outputs
        truth = torch.full(mask.shape, IGNORE, dtype=torch.long, device=logits.device)
        words = (mask != 0).sum(dim=1).tolist()
        for i, tags in enumerate(targets):
            if len(tags) != words[i]:
                raise ValueError(f"example {i} of the batch has {words[i]} words but {len(tags)} tags")
            truth[i, :len(tags)] = tags.to(logits.device)
        truth[mask != 1] = IGNORE  # no vector: not trained on
        if not bool((truth != IGNORE).any()):
            return logits.sum() * 0.0  # no word with a vector in this batch
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), truth.reshape(-1), ignore_index=IGNORE)

    def predictions(self, outputs):
        """Per example, an int64 array of tag ids, one per word (the outside tag for a word
        without a vector)."""
        logits, mask = outputs
        best = logits.argmax(dim=-1).masked_fill(mask == -1, self.outside).cpu().numpy()
        words = (mask != 0).sum(dim=1).tolist()
        return [best[i, :n].copy() for i, n in enumerate(words)]

    def info(self) -> dict:
        import seqeval

        return {"seqeval": {"version": getattr(seqeval, "__version__", None) or _version("seqeval"),
                            "f1": CONLLEVAL, "precision": CONLLEVAL, "recall": CONLLEVAL, "f1_strict": STRICT},
                "words_without_vector": self.class_names[self.outside]}


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover
        return None


class TokenClassification(Task):
    name = "token-classification"
    version = "1"
    description = "a tag per word (NER); linear head on each word's first sub-token; headline seqeval entity F1"
    metrics = (
        MetricSpec("f1", higher_is_better=True, low=0.0, high=1.0,
                   description="entity-level F1 (micro over entity types), seqeval's default mode: the conlleval "
                               "script's rules"),
        MetricSpec("precision", higher_is_better=True, low=0.0, high=1.0,
                   description="entity-level precision, seqeval's default mode (conlleval)"),
        MetricSpec("recall", higher_is_better=True, low=0.0, high=1.0,
                   description="entity-level recall, seqeval's default mode (conlleval)"),
        MetricSpec("f1_strict", higher_is_better=True, low=0.0, high=1.0,
                   description="entity-level F1, seqeval's strict mode with the IOB2 scheme (None when the tags "
                               "are not IOB2)"),
        MetricSpec("token_accuracy", higher_is_better=True, low=0.0, high=1.0,
                   description="share of words whose tag is right (seqeval's accuracy_score)"),
    )
    headline = "f1"
    representation = "tokens"
    words = True

    def check_labels(self, labels, target: TargetInfo, split: str) -> None:
        for i, tags in enumerate(_as_tags(labels, f"{split} labels")):
            bad = tags[(tags < 0) | (tags >= target.num_classes)]
            if len(bad):
                raise ValueError(f"{split} labels: example {i} has tag id {int(bad[0])}; expected 0..."
                                 f"{target.num_classes - 1} (one of {', '.join(target.class_names[:6])}"
                                 f"{' ...' if target.num_classes > 6 else ''})")
        if target.num_classes < 2:
            raise ValueError(f"expected at least 2 tags, got {target.num_classes}")

    def objective(self, target: TargetInfo, train_labels) -> TokenClassificationObjective:
        return TokenClassificationObjective(target.class_names)

    def check_predictions(self, predictions, n: int, target: TargetInfo) -> None:
        tags = _as_tags(predictions, "predictions")
        if len(tags) != n:
            raise ValueError(f"expected {n} tag sequences, got {len(tags)}")
        for i, sequence in enumerate(tags):
            if len(sequence) and (sequence.min() < 0 or sequence.max() >= target.num_classes):
                raise ValueError(f"predictions: example {i} has a tag id outside 0...{target.num_classes - 1}")

    def score(self, predictions, labels, target: TargetInfo) -> dict:
        import warnings

        from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        names = target.class_names
        truth, predicted = [], []
        for i, (tags, guess) in enumerate(zip(_as_tags(labels, "labels"), _as_tags(predictions, "predictions"))):
            if len(tags) != len(guess):
                raise ValueError(f"example {i}: {len(guess)} predicted tags for {len(tags)} words")
            truth.append([names[t] for t in tags])
            predicted.append([names[t] for t in guess])
        if not sum(map(len, truth)):
            return {spec.name: None for spec in self.metrics}
        with warnings.catch_warnings():  # no entities predicted (or none labelled): 0 by zero_division
            warnings.simplefilter("ignore")
            scores = {"f1": f1_score(truth, predicted, zero_division=0),
                      "precision": precision_score(truth, predicted, zero_division=0),
                      "recall": recall_score(truth, predicted, zero_division=0),
                      "f1_strict": f1_score(truth, predicted, mode="strict", scheme=IOB2, zero_division=0)
                      if is_iob2(names) else None,
                      "token_accuracy": accuracy_score(truth, predicted)}
        return {name: None if value is None else float(value) for name, value in scores.items()}

    def saved_predictions(self, predictions, labels, target: TargetInfo) -> list[list[str]]:
        """The predicted tags by name, one list per example and one tag per word: what
        seqeval and conlleval read."""
        names = target.class_names
        return [[names[t] for t in guess] for guess in _as_tags(predictions, "predictions")]


@tlbench.hookimpl
def tlbench_register_tasks(register):
    register(TokenClassification())
