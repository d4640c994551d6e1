"""A compact, read-only sequence of strings: one UTF-8 blob plus an offsets array.

A Python list of a million path strings costs ~100 MB, and every DataLoader worker forked from
the trainer slowly copies it (touching an object's refcount dirties its page). Two numpy
buffers cost ~50 bytes a path and are shared by forked workers without a copy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np


class Strings(Sequence):
    __slots__ = ("_blob", "_offsets")

    def __init__(self, items: Iterable[str] = ()):
        if isinstance(items, Strings):
            self._blob, self._offsets = items._blob, items._offsets
            return
        builder = StringsBuilder()
        builder.extend(items)
        built = builder.build()
        self._blob, self._offsets = built._blob, built._offsets

    @classmethod
    def _of(cls, blob: np.ndarray, offsets: np.ndarray) -> Strings:
        s = cls.__new__(cls)
        s._blob, s._offsets = blob, offsets
        return s

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} strings")
        return self._blob[self._offsets[i] : self._offsets[i + 1]].tobytes().decode()

    def __iter__(self):
        blob, off = self._blob.tobytes(), self._offsets.tolist()
        # One bytes object for the whole walk: slicing it is far cheaper than a numpy slice per item.
        for a, b in itertools.pairwise(off):
            yield blob[a:b].decode()

    def __eq__(self, other) -> bool:
        if isinstance(other, Strings):
            return np.array_equal(self._offsets, other._offsets) and np.array_equal(self._blob, other._blob)
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s, _ in zip(self, range(3)))
        return f"Strings([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def take(self, rows) -> Strings:
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self._offsets[rows], self._offsets[rows + 1]
        lengths = ends - starts
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if len(rows) == 0:
            return Strings._of(np.zeros(0, np.uint8), offsets)
        # Gather each string's bytes without a Python loop: a per-byte source index.
        src = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Strings._of(self._blob[src], offsets)

    def hash64(self, chunk: int = 65536) -> np.ndarray:
        """A 64-bit hash of each string, vectorised (a polynomial over its bytes, then splitmix64's
        finaliser): a million paths in well under a second. Stable across processes and runs, so it
        can key a persistent cache; not cryptographic."""
        out = np.empty(len(self), np.uint64)
        lengths = np.diff(self._offsets)
        longest = int(lengths.max(initial=0))
        powers = np.ones(max(longest, 1), np.uint64)
        for k in range(1, longest):
            powers[k] = (int(powers[k - 1]) * _POLY) & _MASK
        with np.errstate(over="ignore"):
            for a in range(0, len(self), chunk):
                b = min(a + chunk, len(self))
                lo, hi = self._offsets[a], self._offsets[b]
                data = self._blob[lo:hi].astype(np.uint64) + np.uint64(1)
                ends = np.repeat(self._offsets[a + 1 : b + 1] - lo, lengths[a:b])
                terms = data * powers[ends - 1 - np.arange(hi - lo)]
                starts = self._offsets[a:b] - lo
                sums = np.add.reduceat(terms, np.minimum(starts, max(hi - lo - 1, 0))) if hi > lo else \
                    np.zeros(b - a, np.uint64)
                sums[lengths[a:b] == 0] = 0
                out[a:b] = _splitmix(sums ^ (lengths[a:b].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
        return out

    @property
    def nbytes(self) -> int:
        return self._blob.nbytes + self._offsets.nbytes


_POLY = 0x100000001B3  # FNV-1a's 64-bit prime: odd, so every power stays odd
_MASK = 2**64 - 1


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class StringsBuilder:
    """Append strings in chunks; memory stays one blob, not one object per string."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self._lengths: list[np.ndarray] = []

    def extend(self, items: Iterable[str]) -> None:
        encoded = [s.encode() for s in items]
        if encoded:
            self._chunks.append(b"".join(encoded))
            self._lengths.append(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))

    def build(self) -> Strings:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        blob = np.frombuffer(b"".join(self._chunks), dtype=np.uint8).copy()
        self._chunks, self._lengths = [], []
        return Strings._of(blob, offsets)
