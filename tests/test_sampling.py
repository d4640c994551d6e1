"""The P x K sampler's invariants over whole epochs."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from facerec.errors import FacerecError
from facerec.sampling import PKSampler


def labels_like_lfw(seed=0):
    rng = np.random.default_rng(seed)
    counts = np.r_[rng.integers(1, 4, 300), rng.integers(5, 30, 40), [120]]
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize("k,p,cap,mode", [(1, 32, None, "pad"), (2, 16, 20, "pad"), (3, 10, None, "drop"), (4, 8, 12, "pad")])
def test_epoch_invariants(k, p, cap, mode):
    labels = labels_like_lfw()
    s = PKSampler(labels, k, p, seed=5, max_img_per_cls=cap, min_images=mode)
    batches = list(s)
    assert len(batches) == len(s)  # exact before the first epoch
    served = collections.Counter()
    for b in batches:
        ids = labels[b]
        groups = collections.Counter(ids.tolist())
        assert all(v == k for v in groups.values())  # K images of each identity, no identity twice
        assert len(groups) <= p
        served.update(groups.keys())
    expected = {c for c in np.unique(labels) if mode == "pad" or (labels == c).sum() >= k}
    assert set(served) == expected  # every identity served
    if cap:
        assert max(served.values()) <= cap // k
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= k  # balanced: no ragged tail


def test_seeded_per_epoch():
    labels = labels_like_lfw()
    a, b = PKSampler(labels, 2, 16, seed=1), PKSampler(labels, 2, 16, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_sharding_gives_equal_disjoint_shares():
    labels = labels_like_lfw()
    full = PKSampler(labels, 2, 16, seed=3)
    shards = [PKSampler(labels, 2, 16, seed=3, rank=r, world_size=3) for r in range(3)]
    lists = [list(s) for s in shards]
    assert all(len(l) == len(shards[0]) == len(s) for l, s in zip(lists, shards))
    flat = [tuple(b) for l in lists for b in l]
    assert set(flat) == {tuple(b) for b in full}  # padding repeats batches, never invents them


def test_oversampling_and_errors():
    labels = np.repeat([0, 1, 2], [2, 3, 30])
    s = PKSampler(labels, 1, 3, oversample_to=10)
    served = collections.Counter(labels[i] for b in s for i in b)
    assert served[0] == 10 and served[1] == 10 and served[2] == 30
    with pytest.raises(FacerecError):
        PKSampler(labels, 0, 3)
    with pytest.raises(FacerecError):
        PKSampler(labels, 1, 3, min_images="skip")
