"""Batches for training and evaluation, from image files (streamed) or from a decoded store.

One DataLoader item is one whole batch: the sampler yields `(epoch, step, indices)` and the
dataset decodes (or looks up) those images, then crops, flips, augments and normalises them with
a generator seeded from (seed, epoch, step) alone. So a batch is the same whichever process
makes it, however many workers there are, whether it comes from files or from the store, and
after a resume.

Memory: the dataset holds the train list's compact arrays (paths blob, labels), shared by forked
workers without a copy; each worker holds only the batches in flight.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facerec.data.decode import load_faces
from facerec.data.transforms import BatchTransform, Preprocess


def step_generator(seed: int, epoch: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator for one step's random draws: a function of its coordinates, not of history."""
    s = np.random.SeedSequence([seed % 2**63, epoch, step, stream]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(s[0]) << 32 | int(s[1]))


class FileFaces:
    """uint8 (B, 3, R, R) faces decoded from image files on demand."""

    def __init__(self, root, paths, pre: Preprocess):
        self.root, self.paths, self.pre = str(root), paths, pre

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def get(self, idx) -> torch.Tensor:
        return load_faces([self.path(int(i)) for i in idx], self.pre)


class StoredFaces:
    """The same faces from a decoded uint8 store (a tensor in RAM or a memory-mapped array)."""

    def __init__(self, store):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def get(self, idx) -> torch.Tensor:
        idx = np.asarray(idx, dtype=np.int64)
        if isinstance(self.store, torch.Tensor):
            return self.store[torch.from_numpy(idx)]
        return torch.from_numpy(np.ascontiguousarray(self.store[idx]))


class Batches(Dataset):
    """Item `(epoch, step, indices)` -> (normalised float batch, labels); with `uint8` the batch stays
    uint8 (cropped, flipped, augmented) and `transform.normalize` is applied by the consumer, on its device."""

    def __init__(self, faces, transform: BatchTransform, labels=None, seed: int = 0, uint8: bool = False):
        self.faces, self.transform, self.seed, self.uint8 = faces, transform, seed, uint8
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)

    def __len__(self) -> int:  # items come from the plan, not from an index range
        return len(self.faces)

    def __getitem__(self, item):
        epoch, step, idx, *share = item  # share: (offset, total) of this rank's slice of a global batch
        x = self.transform(self.faces.get(idx), step_generator(self.seed, epoch, step), *share, normalize=not self.uint8)
        if self.labels is None:
            return x
        return x, self.labels[torch.as_tensor(np.asarray(idx, dtype=np.int64))]


class Plan:
    """The sampler the DataLoader iterates: this epoch's batches, from step `start`, `len` honest."""

    def __init__(self, batches: list, epoch: int, start: int = 0, stop: int | None = None, share=None):
        self.batches, self.epoch, self.share = batches, epoch, share
        self.start, self.stop = start, len(batches) if stop is None else min(stop, len(batches))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            if self.share is None:
                yield self.epoch, step, self.batches[step]
            else:  # (k, world): this rank's identity groups of the global batch, and where they sit in it
                yield self.epoch, step, *self.share_of(self.batches[step])

    def share_of(self, batch):
        from facerec.trainer.distributed import share

        return share(batch, *self.share)


def make_loader(dataset: Batches, plan: Plan, *, workers: int, device: torch.device, prefetch: int = 4) -> DataLoader:
    kw = dict(batch_size=None, sampler=plan, num_workers=workers, pin_memory=device.type == "cuda",
              generator=torch.Generator())  # its own generator: the loader never draws from the global RNG
    if workers > 0:
        kw.update(prefetch_factor=prefetch, persistent_workers=False)
    return DataLoader(dataset, **kw)
