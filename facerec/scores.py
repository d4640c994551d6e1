"""face_trainer's scores file: one `score,label,path1,path2[,fold]` line per pair."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FacerecError, ValidationError
from .fileio import atomic_path


@dataclass
class Scores:
    scores: np.ndarray
    labels: np.ndarray  # int8; -1 where unknown
    path1: list[str]
    path2: list[str]
    folds: np.ndarray | None


def write_scores(path, scores, labels, path1, path2, folds=None) -> None:
    """`labels` are written as given (a test list's unknown label stays as it was)."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        if folds is None:
            fh.writelines(f"{s:.6f},{l},{a},{b}\n" for s, l, a, b in zip(scores, labels, path1, path2))
        else:
            fh.writelines(f"{s:.6f},{l},{a},{b},{f}\n" for s, l, a, b, f in zip(scores, labels, path1, path2, folds))


def read_scores(path, *, require_labels: bool = True) -> Scores:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        raise FacerecError(f"{path}: scores file not found") from None
    scores, labels, p1, p2, folds, problems = [], [], [], [], [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) not in (4, 5):
            problems.append(f"{path}:{lineno}: expected 'score,label,path1,path2[,fold]', got {line!r}")
            continue
        try:
            s = float(parts[0])
        except ValueError:
            problems.append(f"{path}:{lineno}: score is not a number: {parts[0]!r}")
            continue
        if parts[1] in ("0", "1"):
            label = int(parts[1])
        elif require_labels:
            problems.append(f"{path}:{lineno}: label must be 0 or 1, got {parts[1]!r}")
            continue
        else:
            label = -1
        if len(parts) == 5:
            try:
                folds.append(int(parts[4]))
            except ValueError:
                problems.append(f"{path}:{lineno}: fold must be an integer, got {parts[4]!r}")
                continue
        scores.append(s)
        labels.append(label)
        p1.append(parts[2])
        p2.append(parts[3])
    if folds and len(folds) != len(scores):
        problems.append(f"{path}: the fold column must be on every line or on none")
    if problems:
        raise ValidationError(f"scores file {path}", problems)
    if not scores:
        raise FacerecError(f"{path}: no scores")
    return Scores(np.array(scores), np.array(labels, np.int8), p1, p2, np.array(folds) if folds else None)
