"""Decode each image once into a uint8 store at training resolution (plus crop margin).

JPEG decoding and PIL resizing dominate a CPU training step for small face models, and they
repeat identically every epoch. The store holds `(N, 3, R, R)` uint8 faces (R = the resize
before the random/centre crop), decoded in parallel DataLoader workers, kept in a memory-mapped
`.npy` under the cache folder and reused by later runs. Its key covers every image's path,
size and mtime plus the geometry, so a changed source or size builds a new store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..fileio import atomic_path
from .transforms import Preprocess, load_face

CACHE_ENV = "FACEREC_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "facerec")


class _Decode(Dataset):
    def __init__(self, paths, pre):
        self.paths, self.pre = paths, pre

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(load_face(self.paths[i], self.pre))).permute(2, 0, 1).contiguous()


def _key(paths: list[str], pre: Preprocess) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([pre.resize_to, pre.face_crop, 1]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def decode_all(paths: list[str], pre: Preprocess, *, workers: int | None = None, progress: bool = True,
               desc: str = "decode") -> np.ndarray:
    r = pre.resize_to
    out = np.empty((len(paths), 3, r, r), dtype=np.uint8)
    workers = (os.cpu_count() or 1) if workers is None else workers
    dl = DataLoader(_Decode(paths, pre), batch_size=64, num_workers=workers)
    i = 0
    for batch in tqdm(dl, desc=desc, unit="batch", disable=not progress, leave=False):
        out[i : i + len(batch)] = batch.numpy()
        i += len(batch)
    return out


def load_store(paths: list[str], pre: Preprocess, *, use_disk: bool = True, workers: int | None = None,
               progress: bool = True) -> torch.Tensor:
    """uint8 (N, 3, R, R) faces for `paths`, from the disk cache when its key matches."""
    if not use_disk:
        return torch.from_numpy(decode_all(paths, pre, workers=workers, progress=progress))
    path = cache_dir() / f"faces-{_key(paths, pre)}-{pre.resize_to}.npy"
    if not path.is_file():
        arr = decode_all(paths, pre, workers=workers, progress=progress, desc=f"decode -> {path.name}")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    arr = np.load(path, mmap_mode="r")
    return torch.from_numpy(np.array(arr))  # one read into RAM; writable, so torch does not warn
