"""The per-fold embedding cache: hits, partial hits, stale and damaged files."""

from __future__ import annotations

import numpy as np

from facerec.experiments.fold_embeddings import cache_path, embed_cached


class _Pre:
    def __init__(self, size):
        self.size = size

    def to_dict(self):
        return {"input_size": self.size}


class _Model:
    """Embeds a path as a fixed function of its name, recording what it was asked."""

    embedding_dim = 3

    def __init__(self, size=32):
        self.pre, self.calls = _Pre(size), []

    def embed(self, paths, tta, progress=False):
        self.calls.append((list(paths), tta))
        return np.array([[len(p), sum(map(ord, p)) % 7, 1.0 + tta] for p in paths], np.float32)


def _want(paths, tta):
    return np.array([[len(p), sum(map(ord, p)) % 7, 1.0 + tta] for p in paths], np.float32)


def test_only_missing_images_are_embedded_and_a_changed_checkpoint_starts_again(tmp_path):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"weights v1")
    cache, m = cache_path(tmp_path, True), _Model()
    assert cache.name == "embeddings-tta.npz" and cache_path(tmp_path, False).name == "embeddings-plain.npz"
    a = ["x/a.jpg", "x/bb.jpg", "y/c.jpg"]
    assert np.array_equal(embed_cached(m, a, ckpt, cache, True, False), _want(a, True))
    b = ["y/c.jpg", "z/dddd.jpg", "x/a.jpg", "z/dddd.jpg"]  # order, repeats and one new image
    assert np.array_equal(embed_cached(m, b, ckpt, cache, True, False), _want(b, True))
    assert m.calls == [(a, True), (["z/dddd.jpg"], True)]
    assert np.array_equal(embed_cached(m, b[::-1], ckpt, cache, True, False), _want(b[::-1], True))
    assert len(m.calls) == 2 and not list(tmp_path.glob(".*.tmp"))

    ckpt.write_bytes(b"weights v2")  # a retrained fold: everything again
    embed_cached(m, a, ckpt, cache, True, False)
    assert m.calls[-1] == (a, True)
    embed_cached(_Model(size=64), a, ckpt, cache, True, False)  # other preprocessing: again
    other = _Model(size=64)
    embed_cached(other, a, ckpt, cache, True, False)
    assert other.calls == []


def test_a_damaged_file_is_embedded_again_not_an_error(tmp_path):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"w")
    cache, m = cache_path(tmp_path, False), _Model()
    cache.write_bytes(b"not an npz")
    a = ["p/one.png"]
    assert np.array_equal(embed_cached(m, a, ckpt, cache, False, False), _want(a, False))
    assert m.calls == [(a, False)]
    cache.write_bytes(cache.read_bytes()[:40])  # a zip cut short: a lost cache too
    assert np.array_equal(embed_cached(m, a, ckpt, cache, False, False), _want(a, False))
    assert m.calls == [(a, False), (a, False)]
    with np.load(cache, allow_pickle=False) as z:
        assert list(z["paths"]) == a
