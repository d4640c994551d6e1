"""torch Datasets over image paths; decoding happens in DataLoader workers."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

from facerec.data.decode import load_face
from facerec.data.transforms import Preprocess


class FaceImages(Dataset):
    def __init__(self, paths: list[str], labels=None, *, pre: Preprocess, transform):
        self.paths = paths
        self.labels = labels
        self.pre = pre
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x = self.transform(load_face(self.paths[i], self.pre))
        return x if self.labels is None else (x, int(self.labels[i]))


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


def loader(dataset: Dataset, *, batch_size: int | None = None, batch_sampler=None, workers: int | None = None,
           device: torch.device | str = "cpu", shuffle: bool = False) -> DataLoader:
    workers = default_workers() if workers is None else workers
    kw = dict(num_workers=workers, pin_memory=torch.device(device).type == "cuda")
    if workers > 0:
        kw.update(persistent_workers=False, prefetch_factor=4)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kw)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kw)
