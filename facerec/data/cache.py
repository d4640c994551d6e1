"""Decode each image once into a uint8 store at training resolution (plus crop margin).

JPEG decoding and resizing dominate a CPU training step for small face models, and they
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

from facerec.data.decode import DECODE_VERSION, load_face
from facerec.data.transforms import Preprocess
from facerec.util.fileio import atomic_path
from facerec.util.progress import progress as progress_of

CACHE_ENV = "FACEREC_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "facerec")


CACHE_MODES = ("auto", "ram", "disk", "off")


class _Decode(Dataset):
    def __init__(self, root: str, paths, pre):
        self.root, self.paths, self.pre = root, paths, pre

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        path = os.path.join(self.root, self.paths[i])
        return load_face(path, self.pre)


def store_bytes(n_images: int, pre: Preprocess) -> int:
    return n_images * 3 * pre.resize_to**2


def choose(mode: str, n_images: int, pre: Preprocess, budget_mb: float) -> tuple[str, str]:
    """(ram | disk | off, why): `auto` keeps the decoded store only when it fits the budget."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}")
    need = store_bytes(n_images, pre) / 2**20
    if mode != "auto":
        return mode, f"--cache {mode}"
    if need <= budget_mb:
        return "ram", f"the decoded set ({need:.0f} MB) fits the {budget_mb:.0f} MB cache budget"
    return "off", (f"the decoded set would take {need:.0f} MB, over the {budget_mb:.0f} MB cache budget "
                   "(--cache-budget-mb): images are decoded from files every epoch")


def _key(root: str, paths, pre: Preprocess, stats=None) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([pre.resize_to, pre.face_crop, 2, DECODE_VERSION]).encode())  # decoder changes: new store
    for i, p in enumerate(paths):
        full = os.path.abspath(os.path.join(root, p))
        if stats is None:
            st = os.stat(full)
            size, mtime = st.st_size, st.st_mtime_ns
        else:
            size, mtime = int(stats[0][i]), int(stats[1][i])
        h.update(f"{full}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:20]


def _decode_into(out, root: str, paths, pre: Preprocess, workers: int | None, progress: bool, desc: str) -> None:
    workers = (os.cpu_count() or 1) if workers is None else workers
    dl = DataLoader(_Decode(root, paths, pre), batch_size=64, num_workers=workers)
    i = 0
    for batch in progress_of(dl, desc=desc, unit="batch", bar=progress):
        out[i : i + len(batch)] = batch.numpy()
        i += len(batch)


def decode_all(paths, pre: Preprocess, *, root: str = "", workers: int | None = None, progress: bool = True,
               desc: str = "decode") -> np.ndarray:
    r = pre.resize_to
    out = np.empty((len(paths), 3, r, r), dtype=np.uint8)
    _decode_into(out, root, paths, pre, workers, progress, desc)
    return out


def load_store(paths, pre: Preprocess, *, root: str = "", use_disk: bool = True, in_ram: bool = True, stats=None,
               workers: int | None = None, progress: bool = True):
    """uint8 (N, 3, R, R) faces for `paths` (relative to `root`), from the disk cache when its key
    matches. `in_ram=False` returns the cache memory-mapped (the page cache decides what stays)."""
    if not use_disk:
        return torch.from_numpy(decode_all(paths, pre, root=root, workers=workers, progress=progress))
    r = pre.resize_to
    path = cache_dir() / f"faces-{_key(root, paths, pre, stats)}-{r}.npy"
    if not path.is_file():
        # Decoded straight into the file: building a store never holds it in RAM.
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), 3, r, r))
            _decode_into(out, root, paths, pre, workers, progress, f"decode -> {path.name}")
            out.flush()
            del out
    arr = np.load(path, mmap_mode="r")
    if not in_ram:
        return arr
    return torch.from_numpy(np.array(arr))  # one read into RAM; writable, so torch does not warn
