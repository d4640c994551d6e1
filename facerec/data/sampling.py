"""P x K identity sampler: batches of P identities with K images each, no identity twice.

Use it as a DataLoader `batch_sampler`; it yields lists of dataset indices. Each epoch is drawn
from numpy's generator seeded with (seed, epoch) (`set_epoch`), so any epoch can be replayed.

1. Images per identity. Identity i with n_i images is given
       m_i = min(max(n_i, oversample_to, K), max_img_per_cls)
   images: its own images shuffled, topped up by draws with replacement when m_i > n_i. So
   identities with fewer than K images are padded to K (`min_images="pad"`), or left out
   (`"drop"`, listed in `self.dropped`); `oversample_to` lifts small identities (class
   imbalance); `max_img_per_cls` caps large ones.
2. Groups. The m_i images are cut into g_i = m_i // K groups of K; the m_i mod K images left
   over are skipped this epoch (a different random few every epoch).
3. Batches. With G = sum g_i groups there are B = ceil(G / P) batches: B - 1 full ones (P
   identities) and a last one holding the remaining r = G - (B - 1) P groups, yielded last.
   Identities are laid out in random order, each one's groups consecutive, and dealt
   column by column into a B x P grid whose last row (the short batch) has only r cells.
   Consecutive cells fall in distinct rows as long as an identity has fewer than B groups,
   so no identity appears twice in a batch and nothing is dropped or deferred; identities
   with exactly B groups go first, onto full-height columns. When that cannot work (one
   identity owns more than ~1/P of all groups), the groups are dealt round-robin over
   B = max(ceil(G / P), max g_i) batches of nearly equal size instead (cap the identity with
   `max_img_per_cls` to avoid it). Either way len() follows from the counts alone.
   With fill="full" the dominant identities are capped instead, at the most groups that keep
   batches full (`_full_cap`); the groups left over are skipped this epoch (a different random
   few every epoch), as face_trainer's sampler does.
4. drop_last=True drops batches with fewer than P identities.
Several processes share each global batch by identity groups (facerec.trainer.distributed.share), so every
rank builds this same list.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

from facerec.errors import FacerecError


class PKSampler(Sampler[list[int]]):
    def __init__(self, labels, per_class: int, classes_per_batch: int, *, seed: int = 0,
                 max_img_per_cls: int | None = None, min_images: str = "pad", oversample_to: int | None = None,
                 drop_last: bool = False, fill: str = "spread"):
        if per_class < 1 or classes_per_batch < 1:
            raise FacerecError(f"per_class (K) and classes_per_batch (P) must be >= 1, got {per_class} and "
                               f"{classes_per_batch}")
        if min_images not in ("pad", "drop"):
            raise FacerecError(f"min_images must be 'pad' or 'drop', got {min_images!r}")
        if max_img_per_cls is not None and max_img_per_cls < per_class:
            raise FacerecError(f"max_img_per_cls ({max_img_per_cls}) is below per_class ({per_class}): "
                               "no identity could fill a group")
        if oversample_to and max_img_per_cls and oversample_to > max_img_per_cls:
            raise FacerecError(f"oversample_to ({oversample_to}) exceeds max_img_per_cls ({max_img_per_cls})")
        if fill not in ("spread", "full"):
            raise FacerecError(f"fill must be 'spread' or 'full', got {fill!r}")
        self.k, self.p = per_class, classes_per_batch
        self.seed, self.epoch = seed, 0
        self.cap, self.min_images, self.oversample_to = max_img_per_cls, min_images, oversample_to
        self.drop_last = drop_last

        labels = np.asarray(labels)
        order = np.argsort(labels, kind="stable")  # one sort, not a scan per identity
        classes, starts = np.unique(labels[order], return_index=True)
        members = np.split(order, starts[1:]) if len(order) else []
        self.dropped = [c.item() for c, idx in zip(classes, members) if min_images == "drop" and len(idx) < per_class]
        kept = [(c, idx) for c, idx in zip(classes, members) if not (min_images == "drop" and len(idx) < per_class)]
        self.classes = [c for c, _ in kept]
        self.members = [idx for _, idx in kept]
        self.n_images = np.array([self._n_images(len(idx)) for idx in self.members], dtype=np.int64)
        self.n_groups = self.n_images // self.k
        self.group_cap = self._full_cap() if fill == "full" else None
        if self.group_cap is not None:
            self.n_groups = np.minimum(self.n_groups, self.group_cap)
        self._plan()

    def _full_cap(self) -> int | None:
        """The most groups an identity may give an epoch so that every batch but the last holds P
        identities: the largest c with sum(min(g_i, c)) >= c * P (face_trainer likewise skips
        what would put an identity twice in a batch). None when no cap is needed or none helps."""
        g, p = self.n_groups, self.p
        enough = lambda c: int(np.minimum(g, c).sum()) >= c * p  # noqa: E731
        top = int(g.max(initial=0))
        if len(g) < p or top == 0 or enough(top):
            return None
        lo, hi = 1, top  # enough(1) holds (>= P identities); enough(top) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if enough(mid) else (lo, mid)
        return lo

    def _n_images(self, n: int) -> int:
        m = max(n, self.oversample_to or 0, self.k)
        return min(m, self.cap) if self.cap else m

    def _plan(self) -> None:
        """Batch layout from the group counts alone: `self.cell` maps the t-th group to its batch."""
        g, p = self.n_groups, self.p
        total = int(g.sum())
        b = math.ceil(total / p)
        top = int(g.max(initial=0))
        r = total - (b - 1) * p
        self.full = total > 0 and (top < b or (top == b and int((g == b).sum()) <= r))
        if self.full:
            # Column-major over a B x P grid whose last row has r cells.
            rows = [np.arange(b if col < r else b - 1) for col in range(p)]
            self.cell = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            sizes = np.full(b, p)
            sizes[-1] = r
        else:
            b = max(b, top)
            self.cell = np.arange(total) % b if b else np.zeros(0, np.int64)
            sizes = np.bincount(self.cell, minlength=b)
        self.n_batches = b
        self.keep = sizes >= p if self.drop_last else np.ones(b, bool)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.keep.sum())

    def _images(self, rng: np.random.Generator, i: int) -> np.ndarray:
        idx, m = self.members[i], int(self.n_groups[i]) * self.k
        picked = rng.permutation(idx)
        if m > len(idx):
            picked = np.concatenate([picked, rng.choice(idx, size=m - len(idx), replace=True)])
        return picked[:m]

    def batches(self) -> list[np.ndarray]:
        """This epoch's batches as int64 index arrays (one array per batch: a million indices
        cost 8 MB here, not a million Python ints)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.members))
        if self.full:  # identities with B groups must start at the top of a column
            order = order[np.argsort(self.n_groups[order] < self.n_batches, kind="stable")]
        picked = [self._images(rng, i) for i in order]
        groups = np.concatenate(picked).reshape(-1, self.k) if picked else np.zeros((0, self.k), np.int64)
        # Group t goes to batch cell[t]; within a batch, groups keep their dealing order.
        by_cell = np.argsort(self.cell, kind="stable")
        dealt = np.split(groups[by_cell].reshape(-1), np.cumsum(np.bincount(self.cell, minlength=self.n_batches))[:-1] * self.k)
        if self.full:  # the short batch, if any, is row B - 1: keep it last
            rows = np.r_[rng.permutation(self.n_batches - 1), self.n_batches - 1]
        else:
            rows = rng.permutation(self.n_batches)
        return [dealt[r] for r in rows if self.keep[r]]

    def __iter__(self):
        return (b.tolist() for b in self.batches())
