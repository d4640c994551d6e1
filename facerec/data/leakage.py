"""Train/val leakage: an identity, or an identical image (same bytes), on both sides.

Image contents are compared by BLAKE2b digests. Reading a million training images at every start
would cost minutes, so digests persist in a cache keyed by (absolute path, size, mtime): a second
start only stats each file once (the list reader's stat, reused) and reads none.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facerec.data.lists import PairList, TrainList, stat_files
from facerec.data.strings import Strings
from facerec.errors import cannot_read
from facerec.util.fileio import atomic_path

log = logging.getLogger(__name__)
DIGEST_BYTES = 16


def _digest(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(), digest_size=DIGEST_BYTES).digest()
    except OSError as exc:  # the one message decoding gives too: `X: cannot read image (permission denied)`
        raise cannot_read(path, exc) from None


def path_keys(paths) -> np.ndarray:
    """A 64-bit key per path relative to the cache's root (a collision also needs equal size and mtime)."""
    return (paths if isinstance(paths, Strings) else Strings(paths)).hash64()


class DigestCache:
    """Sorted arrays (key of the relative path, size, mtime_ns, digest) in one .npz per image root."""

    def __init__(self, root: str, folder: Path | None = None):
        from facerec.data.cache import cache_dir

        name = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:20]
        self.file = (folder or cache_dir() / "digests") / f"{name}.npz"

    def _load(self):
        try:
            with np.load(self.file) as z:
                return z["key"], z["size"], z["mtime"], z["digest"]
        except (OSError, KeyError, ValueError):  # absent or unreadable: rebuilt from the images
            return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, DIGEST_BYTES), np.uint8)

    def digests(self, root: str, paths, size: np.ndarray, mtime: np.ndarray, *, threads: int = 8) -> np.ndarray:
        """(N, 16) uint8 digests; only images missing from the cache (or changed) are read."""
        keys = path_keys(paths)
        ck, cs, cm, cd = self._load()
        pos = np.searchsorted(ck, keys)
        pos_c = np.minimum(pos, max(len(ck) - 1, 0))
        hit = (pos < len(ck)) & (ck[pos_c] == keys) & (cs[pos_c] == size) & (cm[pos_c] == mtime) if len(ck) else \
            np.zeros(len(keys), bool)
        out = np.empty((len(keys), DIGEST_BYTES), np.uint8)
        out[hit] = cd[pos_c[hit]]
        miss = np.flatnonzero(~hit)
        if len(miss):
            log.info("hashing %d image(s) for the leakage check (cached in %s)", len(miss), self.file)
            with ThreadPoolExecutor(max_workers=threads) as pool:  # I/O bound: threads overlap the reads
                for chunk in np.array_split(miss, -(-len(miss) // 4096)):  # bounded: no future per image at once
                    got = pool.map(_digest, [os.path.join(root, paths[int(i)]) for i in chunk])
                    out[chunk] = np.frombuffer(b"".join(got), np.uint8).reshape(-1, DIGEST_BYTES)
            self._store(np.concatenate([ck, keys[miss]]), np.concatenate([cs, size[miss]]),
                        np.concatenate([cm, mtime[miss]]), np.concatenate([cd, out[miss]]))
        return out

    def _store(self, key, size, mtime, digest) -> None:
        # Newest entry wins for a key seen twice (a changed file): keep the last occurrence.
        order = np.argsort(key, kind="stable")[::-1]
        key_r = key[order]
        _, first = np.unique(key_r, return_index=True)
        keep = order[first]
        with atomic_path(self.file) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=key[keep], size=size[keep], mtime=mtime[keep], digest=digest[keep])


@dataclass
class LeakageReport:
    identities: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (train path, val path)

    @property
    def clean(self) -> bool:
        return not self.identities and not self.images

    def describe(self, limit: int = 20) -> str:
        lines = []
        if self.identities:
            lines.append(f"{len(self.identities)} identity(ies) in both train and val: " + ", ".join(self.identities[:limit]))
        if self.images:
            lines.append(f"{len(self.images)} identical image(s) in both train and val:")
            lines += [f"  {t}  ==  {v}" for t, v in self.images[:limit]]
        return "\n".join(lines) if lines else "no leakage: identities and image contents are disjoint"


def identity_of(relpath: str) -> str:
    """The identity folder an image sits in (its parent directory name)."""
    parent = Path(relpath).parent.name
    return parent


def check(train: TrainList, val: PairList, hash_images: bool = True) -> LeakageReport:
    val_rel = sorted(set(val.path1) | set(val.path2))
    val_ids = {identity_of(p) for p in val_rel} - {""}
    report = LeakageReport(identities=sorted(val_ids & set(train.classes)))
    if hash_images:
        size, mtime = train.file_stats()
        train_d = DigestCache(str(train.root)).digests(str(train.root), train.paths, size, mtime)
        vsize, vmtime = stat_files(str(val.root), val_rel, val.source)
        val_d = DigestCache(str(val.root)).digests(str(val.root), val_rel, vsize, vmtime)
        # Compare the first 8 bytes as integers (vectorised), then confirm the few candidates in full.
        t8, v8 = train_d[:, :8].copy().view(np.uint64).ravel(), val_d[:, :8].copy().view(np.uint64).ravel()
        by_digest = {}
        for i in np.flatnonzero(np.isin(t8, v8)):
            by_digest.setdefault(train_d[i].tobytes(), train.abspath(int(i)))
        for j, p in enumerate(val_rel):
            hit = by_digest.get(val_d[j].tobytes())
            if hit is not None:
                report.images.append((hit, str(Path(val.root) / p)))
    return report
