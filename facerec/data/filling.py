"""The decoded-image store, filled while the first epoch trains.

Decoding every image before the first step costs minutes on a large set (face_trainer starts at
once). Instead, the first pass over a set streams its faces from the files, exactly as
`--cache off` does, and writes each decoded face into the store file as a side effect; the
DataLoader workers write into the same memory-mapped file, so nothing is decoded twice. After
that pass the faces it did not touch are decoded, the file is renamed into the disk cache (a
reader never sees a half-filled store) and the set is served from the store from then on.
Files and store give the same faces bit for bit, so the batches and numbers are those of a run
that decoded everything first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from facerec.data.cache import _decode_into, _key, cache_dir
from facerec.data.stream import FileFaces, StoredFaces
from facerec.data.transforms import Preprocess


class FillingFaces(FileFaces):
    """FileFaces that also write every face they decode into the store being built."""

    def __init__(self, root, paths, pre: Preprocess, tmp: Path, final: Path):
        super().__init__(root, paths, pre)
        self.tmp, self.final = tmp, final
        self._arrays = None  # opened lazily in each process (workers are forked)

    def _open(self):
        if self._arrays is None or self._arrays[0] != os.getpid():
            store = np.load(self.tmp, mmap_mode="r+")
            filled = np.load(_filled_path(self.tmp), mmap_mode="r+")
            self._arrays = (os.getpid(), store, filled)
        return self._arrays[1], self._arrays[2]

    def get(self, idx) -> torch.Tensor:
        faces = super().get(idx)
        store, filled = self._open()
        idx = np.asarray(idx, dtype=np.int64)
        store[idx] = faces.numpy()
        filled[idx] = 1  # after the face: a row marked filled holds its face
        return faces

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    def complete(self, *, in_ram: bool, workers: int | None, progress: bool = False) -> StoredFaces:
        """Decode what the first pass did not touch, publish the store into the disk cache, and
        return it as StoredFaces (in RAM, or memory-mapped)."""
        store, filled = self._open()
        missing = np.flatnonzero(filled == 0)
        if len(missing):
            out = np.empty((len(missing), *store.shape[1:]), dtype=np.uint8)
            _decode_into(out, self.root, [self.paths[int(i)] for i in missing], self.pre, workers, progress,
                         "decode the rest")
            store[missing] = out
        store.flush()
        self._arrays = None
        del store, filled
        os.replace(self.tmp, self.final)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_filled_path(self.tmp))
        arr = np.load(self.final, mmap_mode="r")
        return StoredFaces(torch.from_numpy(np.array(arr)) if in_ram else arr)

    def discard(self) -> None:
        """A run that stops before the store is complete leaves no partial file behind."""
        for p in (self.tmp, _filled_path(self.tmp)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def _filled_path(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + ".filled.npy")


def _remove_orphans(final: Path) -> None:
    """Partial stores of processes that no longer exist (killed with -9) are deleted."""
    for p in final.parent.glob(f".{final.name}.*.tmp.npy*"):
        pid = p.name[len(final.name) + 2:].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(p)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start(root, paths, pre: Preprocess, stats=None) -> FillingFaces | StoredFaces | None:
    """The store if the disk cache has it (None: the caller loads it as before), else FillingFaces
    writing into a fresh temporary store beside the cache."""
    r = pre.resize_to
    final = cache_dir() / f"faces-{_key(str(root), paths, pre, stats)}-{r}.npy"
    if final.is_file():
        return None
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), 3, r, r)).flush()
    np.lib.format.open_memmap(_filled_path(tmp), mode="w+", dtype=np.uint8, shape=(len(paths),)).flush()
    return FillingFaces(root, paths, pre, tmp, final)
