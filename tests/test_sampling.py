"""The P x K sampler's invariants over whole epochs."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from facerec.data.sampling import PKSampler
from facerec.errors import FacerecError


def labels_like_lfw(seed=0):
    rng = np.random.default_rng(seed)
    counts = np.r_[rng.integers(1, 4, 300), rng.integers(5, 30, 40), [120]]
    return np.repeat(np.arange(len(counts)), counts)


def expected_groups(labels, k, cap=None, mode="pad", oversample_to=None):
    out = {}
    for c, n in collections.Counter(labels.tolist()).items():
        if n < k and mode == "drop":
            continue
        m = max(n, k, oversample_to or 0)
        out[c] = (min(m, cap) if cap else m) // k
    return out


def check_epoch(s: PKSampler, labels, k, p, **kw):
    batches = list(s)
    assert len(batches) == len(s)  # exact, and computable before the first epoch
    served = collections.Counter()
    for b in batches:
        groups = collections.Counter(labels[b].tolist())
        assert all(v == k for v in groups.values())  # K images of each identity, no identity twice
        assert len(groups) <= p
        served.update(groups)
    assert {c: n // k for c, n in served.items()} == expected_groups(labels, k, **kw)  # nothing lost
    return batches


@pytest.mark.parametrize("k,p,cap,mode", [(1, 32, 40, "pad"), (2, 16, 20, "pad"), (3, 10, 30, "drop"),
                                          (4, 8, 12, "pad"), (2, 50, 16, "drop")])
def test_epoch_invariants(k, p, cap, mode):
    labels = labels_like_lfw()
    s = PKSampler(labels, k, p, seed=5, max_img_per_cls=cap, min_images=mode)
    batches = check_epoch(s, labels, k, p, cap=cap, mode=mode)
    assert s.full  # the cap keeps the 120-image identity from dominating
    ids = [len(set(labels[b].tolist())) for b in batches]
    assert all(n == p for n in ids[:-1]) and 1 <= ids[-1] <= p  # full batches, a short one last
    for b in batches:
        assert len(set(b)) == len(b) or mode == "pad"  # repeats only from padding small identities


def test_random_configurations_keep_the_invariants():
    rng = np.random.default_rng(0)
    for trial in range(60):
        counts = rng.integers(1, rng.integers(2, 40), rng.integers(1, 30))
        labels = np.repeat(rng.permutation(len(counts)), counts)
        k, p = int(rng.integers(1, 5)), int(rng.integers(1, 12))
        cap = None if trial % 3 else int(rng.integers(k, 3 * k + 1))
        mode = ("pad", "drop")[trial % 2]
        s = PKSampler(labels, k, p, seed=trial, max_img_per_cls=cap, min_images=mode)
        check_epoch(s, labels, k, p, cap=cap, mode=mode)


def test_a_dominant_identity_falls_back_to_balanced_batches():
    labels = np.repeat([0, 1, 2, 3], [40, 2, 2, 2])  # identity 0 owns 20 of 23 groups
    s = PKSampler(labels, 2, 4)
    assert not s.full and len(s) == 20  # it has to appear in 20 distinct batches
    batches = check_epoch(s, labels, 2, 4)
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 2


def test_drop_last_drops_the_short_batch():
    labels = np.repeat(np.arange(10), 4)  # 20 groups of 2, P = 6: 3 full batches + 2 groups
    full, short = PKSampler(labels, 2, 6, drop_last=True), PKSampler(labels, 2, 6)
    assert len(short) == 4 and len(full) == 3
    assert all(len(b) == 12 for b in full)
    assert [len(b) for b in short] == [12, 12, 12, 4]


def test_seeded_per_epoch():
    labels = labels_like_lfw()
    a, b = PKSampler(labels, 2, 16, seed=1), PKSampler(labels, 2, 16, seed=1)
    assert list(a) == list(b) == list(a)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKSampler(labels, 2, 16, seed=2)) != list(PKSampler(labels, 2, 16, seed=1))


def test_small_identities_pad_drop_and_oversample():
    labels = np.repeat([0, 1, 2], [2, 3, 30])
    s = PKSampler(labels, 1, 3, oversample_to=10)
    served = collections.Counter(labels[i] for b in s for i in b)
    assert served == {0: 10, 1: 10, 2: 30}
    pad = PKSampler(labels, 4, 3, seed=0)
    counts = collections.Counter(labels[i] for b in pad for i in b)
    assert counts[0] == 4 and counts[1] == 4  # padded with replacement up to K
    drop = PKSampler(labels, 4, 3, min_images="drop")
    assert drop.dropped == [0, 1] and {labels[i] for b in drop for i in b} == {2}


def test_works_as_a_batch_sampler():
    labels = np.repeat(np.arange(6), 5)
    data = torch.utils.data.TensorDataset(torch.arange(30), torch.as_tensor(labels))
    loader = torch.utils.data.DataLoader(data, batch_sampler=PKSampler(labels, 2, 3))
    out = list(loader)
    assert len(out) == len(loader) == 4  # 6 identities x 2 groups of 2, 3 identities a batch
    for x, y in out:
        assert torch.equal(torch.as_tensor(labels)[x], y)


def test_errors():
    labels = np.repeat([0, 1, 2], [2, 3, 30])
    for kw in ({"per_class": 0}, {"min_images": "skip"}, {"max_img_per_cls": 1, "per_class": 2},
               {"oversample_to": 20, "max_img_per_cls": 10}, {"fill": "even"}):
        args = {"per_class": 1, "classes_per_batch": 3, **kw}
        with pytest.raises(FacerecError):
            PKSampler(labels, **args)
