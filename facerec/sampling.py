"""P x K identity sampler: batches of P identities with K images each, no identity twice.

Per epoch (seeded by seed + epoch, so any epoch can be replayed):
  1. each identity's images are shuffled, capped at `max_img_per_cls`, and small identities
     are topped up with replacement to `oversample_to`;
  2. they are cut into groups of K; the remainder (< K images) waits for a later epoch.
     An identity with fewer than K images is padded with replacement to one group
     (`min_images="pad"`) or left out (`"drop"`, listed in `dropped`);
  3. groups are dealt to B = max(ceil(G / P), largest group count of one identity) batches:
     identities in random order, each one's groups contiguous, group t -> batch t mod B. So no
     identity appears twice in a batch, nothing is dropped for a collision (it lands in another
     batch), every batch holds floor or ceil of G / B groups, and len() is exact from the
     counts alone. When one identity has more groups than ceil(G / P), batches shrink: cap it
     with `max_img_per_cls`.
With world_size > 1 each rank takes every world_size-th batch; the list is first padded by
repeating batches so every rank gets the same count.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

from .errors import FacerecError


class PKSampler(Sampler[list[int]]):
    def __init__(self, labels, per_class: int, classes_per_batch: int, *, seed: int = 0,
                 max_img_per_cls: int | None = None, min_images: str = "pad", oversample_to: int | None = None,
                 rank: int = 0, world_size: int = 1):
        if per_class < 1 or classes_per_batch < 1:
            raise FacerecError(f"per_class and classes_per_batch must be >= 1, got {per_class} and {classes_per_batch}")
        if min_images not in ("pad", "drop"):
            raise FacerecError(f"min_images must be 'pad' or 'drop', got {min_images!r}")
        if not 0 <= rank < world_size:
            raise FacerecError(f"rank {rank} is outside world_size {world_size}")
        labels = np.asarray(labels)
        self.k, self.p = per_class, classes_per_batch
        self.seed, self.epoch = seed, 0
        self.cap, self.min_images, self.oversample_to = max_img_per_cls, min_images, oversample_to
        self.rank, self.world_size = rank, world_size
        self.by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
        self.dropped = [c for c, idx in self.by_class.items() if len(idx) < per_class and min_images == "drop"]
        self.groups_per_class = {c: self._n_groups(len(idx)) for c, idx in self.by_class.items()}
        n_groups = sum(self.groups_per_class.values())
        self.n_batches = max(math.ceil(n_groups / self.p), max(self.groups_per_class.values(), default=0)) if n_groups else 0

    def _n_images(self, n: int) -> int:
        if self.oversample_to:
            n = max(n, self.oversample_to)
        return min(n, self.cap) if self.cap else n

    def _n_groups(self, n: int) -> int:
        if n < self.k:
            return 1 if self.min_images == "pad" else 0
        return self._n_images(n) // self.k

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n_batches / self.world_size)

    def _groups(self, rng: np.random.Generator, c) -> list[np.ndarray]:
        idx = self.by_class[c]
        g = self.groups_per_class[c]
        if g == 0:
            return []
        n = self._n_images(len(idx))
        if len(idx) < self.k:
            return [rng.choice(idx, size=self.k, replace=True)]
        picked = rng.permutation(idx)
        if n > len(idx):  # oversampling: extra draws with replacement
            picked = np.concatenate([picked, rng.choice(idx, size=n - len(idx), replace=True)])
        picked = picked[: g * self.k]
        return list(picked.reshape(g, self.k))

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = list(self.by_class)
        order = rng.permutation(len(classes))
        dealt: list[list[int]] = [[] for _ in range(self.n_batches)]
        t = 0
        for i in order:
            for group in self._groups(rng, classes[i]):
                dealt[t % self.n_batches].extend(int(x) for x in group)
                t += 1
        batches = [dealt[i] for i in rng.permutation(self.n_batches)]
        if self.world_size > 1:
            batches += batches[: len(self) * self.world_size - len(batches)]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __iter__(self):
        return iter(self.batches())
