"""Train/val leakage: an identity, or an identical image (same bytes), on both sides."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .lists import PairList, TrainList


def _digest(path: str) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def _digests(paths: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=8) as pool:  # I/O bound: threads overlap the reads
        return dict(zip(paths, pool.map(_digest, paths)))


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
    report = LeakageReport(identities=sorted(val_ids & set(train.identities)))
    if hash_images:
        train_abs = train.abspaths()
        val_abs = [str(Path(val.root) / p) for p in val_rel]
        train_hash = _digests(train_abs)
        by_hash = {}
        for p, h in train_hash.items():
            by_hash.setdefault(h, p)
        for p, h in _digests(val_abs).items():
            if h in by_hash:
                report.images.append((by_hash[h], p))
    return report
