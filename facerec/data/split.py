"""Identity-disjoint train/val splits of any identity folder, with balanced val pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerec.data.lists import TrainList, scan_identity_folder, write_pairs, write_train_list
from facerec.errors import DataError, FacerecError


def split_identities(train: TrainList, val_fraction: float, seed: int,
                     test_fraction: float = 0.0) -> tuple[list[str], ...]:
    """(train, val) identities, or (train, val, test) with a test fraction. Only identities with
    two or more images can go to val or test (they need positive pairs)."""
    if not 0 < val_fraction < 1:
        raise FacerecError(f"val fraction must be in (0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise FacerecError(f"test fraction must be in [0, 1) and leave identities to train on (val {val_fraction} + "
                           f"test {test_fraction} >= 1)")
    counts = np.bincount(train.labels, minlength=train.num_classes)
    eligible = sorted(c for c, n in zip(train.classes, counts) if n >= 2)
    n_val = max(2, round(val_fraction * train.num_classes))
    n_test = max(2, round(test_fraction * train.num_classes)) if test_fraction else 0
    if len(eligible) < n_val + n_test:
        raise DataError(f"{train.root}: need {n_val + n_test} identities with >= 2 images for val/test, "
                        f"found {len(eligible)}")
    rng = np.random.default_rng(seed)
    picked = rng.choice(eligible, size=n_val + n_test, replace=False).tolist()
    val, test = sorted(picked[:n_val]), sorted(picked[n_val:])
    held = set(picked)
    rest = sorted(c for c in train.classes if c not in held)
    return (rest, val, test) if test_fraction else (rest, val)


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


def split_folder(folder, out_dir, *, val_fraction: float = 0.25, seed: int = 0, per_image: int = 1, name: str = "split",
                 test_fraction: float = 0.0):
    """Write `<name>_train.txt`, `<name>_val_pairs.csv` and, with a test fraction,
    `<name>_test_pairs.csv` (identities seen by neither training nor model selection); return the paths."""
    full = scan_identity_folder(folder)
    parts = split_identities(full, val_fraction, seed, test_fraction)
    out = Path(out_dir)
    train = full.subset(parts[0])
    written = [out / f"{name}_train.txt"]
    write_train_list(written[0], full.root, train.paths, train.identities)
    for what, ids, offset in zip(("val", "test"), parts[1:], (0, 1)):
        part = full.subset(ids)
        labels, p1, p2 = balanced_pairs(part.paths, list(part.identities), seed + offset, per_image)
        written.append(out / f"{name}_{what}_pairs.csv")
        write_pairs(written[-1], full.root, labels, p1, p2)
    return tuple(written)
