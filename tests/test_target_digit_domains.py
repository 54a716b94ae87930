"""Target `digit-domains`: deterministic, content-hashed styles of scikit-learn's digits,
with fixed disjoint thirds so that the pretraining, labelled and unlabelled domains of
an adaptation never share a handwritten digit."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.params import resolve_params
from tlbench.testing import check_target
from tlbench_builtin.digit_domains import DOMAINS, POOLS, DigitDomains, pool_indices
from tlbench_builtin.digits import load_digit_images


def load(registry=None, **params):
    item = DigitDomains()
    return item.load(resolve_params(item.params, params, "target"), Env(cache_dir="/nonexistent"))


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_conforms(domain, tmp_path):
    data = check_target("digit-domains", {"domain": domain, "pool": "target", "classes": [0, 1, 2], "shots": 5,
                                          "val_shots": 3, "size": 16}, cache_dir=tmp_path)
    assert data.num_classes == 3 and data.class_names == ["0", "1", "2"]


def test_the_thirds_are_disjoint_per_class_and_cover_every_digit():
    _, targets = load_digit_images()
    parts = {pool: set(pool_indices(targets, pool, 0).tolist()) for pool in POOLS if pool != "all"}
    assert not parts["pretrain"] & parts["source"] and not parts["pretrain"] & parts["target"]
    assert not parts["source"] & parts["target"]
    assert set().union(*parts.values()) == set(range(len(targets))) == set(pool_indices(targets, "all", 0).tolist())
    for part in parts.values():  # a third of every class
        counts = np.bincount(targets[sorted(part)], minlength=10)
        assert all(abs(c - n / 3) <= 1 for c, n in zip(counts, np.bincount(targets)))
    assert pool_indices(targets, "source", 1).tolist() != pool_indices(targets, "source", 0).tolist()


def test_a_domain_draws_only_from_its_third_whatever_the_seed():
    source, target = load(domain="clean", pool="source"), load(domain="rotate-blur", pool="target")
    assert not set(source.indices.tolist()) & set(target.indices.tolist())
    for seed in (0, 1, 2):
        parts = target.split_indices(seed)
        drawn = np.concatenate(list(parts.values()))
        assert len(drawn) == len(set(drawn.tolist())) == len(target.images)  # disjoint splits, all used
        splits = target.splits(seed)
        assert len(splits.train) == 10 * 30 and len(splits.val) == 10 * 10
        assert np.bincount(splits.train.labels).tolist() == [30] * 10


def test_the_same_digit_looks_the_same_whatever_the_pool_classes_or_seed():
    everything = load(domain="rotate-blur", pool="all", size=16)
    few = load(domain="rotate-blur", pool="target", classes=[3, 7], size=16)
    position = {index: i for i, index in enumerate(everything.indices.tolist())}
    for i, index in enumerate(few.indices.tolist()):
        assert np.array_equal(few.images[i], everything.images[position[index]])


def test_styles_do_what_they_say():
    clean = load(domain="clean", pool="source", size=16)
    inverted = load(domain="inverted", pool="source", size=16)
    thick = load(domain="thick", pool="source", size=16)
    drawn = load(domain="drawn", pool="source", size=16)
    assert np.array_equal(inverted.images, 255 - clean.images)
    assert (thick.images >= clean.images).all() and (thick.images > 64).sum() > 1.15 * (clean.images > 64).sum()
    assert clean.images.shape[1:] == (16, 16) and drawn.images.shape[1:] == (16, 16, 3)
    assert drawn.images.mean() > 150  # ink on light paper
    assert np.array_equal(clean.labels, drawn.labels)


def _digest(images) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def test_generation_is_deterministic():
    for domain in DOMAINS:
        first, second = load(domain=domain, pool="target", size=16), load(domain=domain, pool="target", size=16)
        assert _digest(first.images) == _digest(second.images)
        a, b = first.splits(3), second.splits(3)
        assert all(np.array_equal(x, y) for x, y in zip(a.test.examples, b.test.examples))


def test_a_shot_count_that_leaves_no_test_images_is_refused():
    from tlbench.errors import ParamError

    item = DigitDomains()
    with pytest.raises(ParamError, match="shots"):
        item.check(resolve_params(item.params, {"pool": "target", "shots": 50, "val_shots": 8}, "t"), None)
    item.check(resolve_params(item.params, {"pool": "all", "shots": 50, "val_shots": 8}, "t"), None)
