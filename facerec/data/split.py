"""Identity-disjoint train/val splits of any identity folder, with balanced val pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FacerecError
from .lists import TrainList, scan_identity_folder, write_pairs, write_train_list


def split_identities(train: TrainList, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Only identities with two or more images can go to val (they need positive pairs)."""
    if not 0 < val_fraction < 1:
        raise FacerecError(f"val fraction must be in (0, 1), got {val_fraction}")
    counts = {c: 0 for c in train.classes}
    for i in train.identities:
        counts[i] += 1
    eligible = sorted(c for c, n in counts.items() if n >= 2)
    n_val = max(2, round(val_fraction * len(counts)))
    if len(eligible) < n_val:
        raise FacerecError(f"{train.root}: need {n_val} identities with >= 2 images for val, found {len(eligible)}")
    rng = np.random.default_rng(seed)
    val = sorted(rng.choice(eligible, size=n_val, replace=False).tolist())
    val_set = set(val)
    return sorted(c for c in counts if c not in val_set), val


def balanced_pairs(paths: list[str], identities: list[str], seed: int, per_image: int = 1):
    """For every image, `per_image` positive and `per_image` negative partners (unordered pairs
    are deduplicated, so the counts are balanced up to collisions)."""
    rng = np.random.default_rng(seed)
    ids = np.array(identities)
    by_id: dict[str, np.ndarray] = {i: np.flatnonzero(ids == i) for i in sorted(set(identities))}
    seen, labels, p1, p2 = set(), [], [], []

    def add(a: int, b: int, label: int):
        key = (min(a, b), max(a, b))
        if a != b and key not in seen:
            seen.add(key)
            labels.append(label)
            p1.append(paths[key[0]])
            p2.append(paths[key[1]])

    for a in range(len(paths)):
        same = by_id[identities[a]]
        for _ in range(per_image):
            add(a, int(rng.choice(same[same != a])), 1)
            other = int(rng.integers(len(paths) - len(same)))
            add(a, int(np.flatnonzero(ids != identities[a])[other]), 0)
    return labels, p1, p2


def split_folder(folder, out_dir, *, val_fraction: float = 0.25, seed: int = 0, per_image: int = 1, name: str = "split"):
    """Write `<name>_train.txt` and `<name>_val_pairs.csv`; return their paths."""
    full = scan_identity_folder(folder)
    train_ids, val_ids = split_identities(full, val_fraction, seed)
    train = full.subset(train_ids)
    val = full.subset(val_ids)
    labels, p1, p2 = balanced_pairs(val.paths, val.identities, seed, per_image)
    out = Path(out_dir)
    write_train_list(out / f"{name}_train.txt", full.root, train.paths, train.identities)
    write_pairs(out / f"{name}_val_pairs.csv", full.root, labels, p1, p2)
    return out / f"{name}_train.txt", out / f"{name}_val_pairs.csv"
