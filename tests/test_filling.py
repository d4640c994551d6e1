"""The decoded store filled while the first epoch trains: same faces, published whole, no leftovers."""

from __future__ import annotations

import os

import numpy as np
import torch

from facerec.data import cache as store_cache
from facerec.data import filling
from facerec.data.lists import load_train
from facerec.data.sampling import PKSampler
from facerec.data.stream import Batches, Plan, StoredFaces, make_loader
from facerec.data.transforms import BatchTransform, Preprocess


def _leftovers(cache):
    return sorted(p.name for p in cache.iterdir() if ".tmp" in p.name)


def test_first_pass_fills_the_store_bit_for_bit(orl_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREC_CACHE", str(tmp_path))
    train = load_train(orl_dir)
    pre = Preprocess(input_size=32)
    faces = filling.start(train.root, train.paths, pre)
    assert isinstance(faces, filling.FillingFaces)
    sampler = PKSampler(train.labels, per_class=2, classes_per_batch=8, seed=5)
    sampler.set_epoch(0)
    plan = Plan(sampler.batches(), epoch=0, stop=5)
    batches = Batches(faces, BatchTransform(pre, train=True, augment="medium"), train.labels, seed=3)
    # Two forked workers write into the same memory-mapped store.
    first = list(make_loader(batches, plan, workers=2, device=torch.device("cpu")))
    touched = sorted({int(i) for b in plan.batches[:5] for i in b})
    filled = np.load(filling._filled_path(faces.tmp))
    assert sorted(np.flatnonzero(filled).tolist()) == touched and 0 < len(touched) < len(train.paths)
    assert not list(tmp_path.glob("faces-*.npy"))  # nothing published before the store is complete

    stored = faces.complete(in_ram=True, workers=0)
    assert isinstance(stored, StoredFaces) and isinstance(stored.store, torch.Tensor)
    reference = store_cache.decode_all(train.paths, pre, root=str(train.root), workers=0, progress=False)
    assert np.array_equal(stored.store.numpy(), reference)  # files and store: the same faces
    assert _leftovers(tmp_path) == [] and len(list(tmp_path.glob("faces-*.npy"))) == 1
    # The same batches again, now from the store.
    again = list(make_loader(Batches(stored, batches.transform, train.labels, seed=3), plan, workers=0,
                             device=torch.device("cpu")))
    for (x, y), (rx, ry) in zip(again, first, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    # A later run finds the published store: nothing to fill, and load_store reads the same file.
    assert filling.start(train.root, train.paths, pre) is None
    loaded = store_cache.load_store(train.paths, pre, root=str(train.root), workers=0, progress=False)
    assert torch.equal(loaded, stored.store)


def test_a_stopped_fill_leaves_nothing(orl_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREC_CACHE", str(tmp_path))
    train = load_train(orl_dir)
    pre = Preprocess(input_size=24)
    faces = filling.start(train.root, train.paths, pre)
    faces.get([0, 1, 2])
    faces.discard()
    assert list(tmp_path.iterdir()) == []
    # A fill killed with -9 leaves its files; the next start removes those of dead processes only.
    faces = filling.start(train.root, train.paths, pre)
    final = faces.final
    dead = tmp_path / f".{final.name}.999999999.tmp.npy"
    dead.write_bytes(b"x")
    (tmp_path / (dead.name + ".filled.npy")).write_bytes(b"x")
    mine = filling.start(train.root, train.paths, pre)  # this process is alive: its own fill stays
    assert not dead.exists() and faces.tmp.exists() and mine.tmp == faces.tmp
    faces.discard()
    assert os.listdir(tmp_path) == []
