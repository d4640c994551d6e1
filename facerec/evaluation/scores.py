"""face_trainer's scores file: one `score,label,path1,path2[,fold]` line per pair.

Scores are written with Python's shortest round-trip repr, so reading a file back gives the
very floats that were written and `facerec score` reproduces the in-memory metrics exactly.
Reading takes a fast column-wise path for well-formed files; anything it cannot take falls
back to a line-by-line pass, which is the reference and reports every bad line at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from facerec.errors import DataError, ValidationError
from facerec.util.fileio import atomic_path

UNKNOWN = -1  # label value of a pair whose label text is the unknown placeholder
UNKNOWN_TEXT = "-1"  # written for an integer label of -1


@dataclass
class Scores:
    scores: np.ndarray  # float64
    labels: np.ndarray  # int8: 1 same, 0 different, -1 unknown
    path1: list[str]
    path2: list[str]
    folds: np.ndarray | None  # int64, or None when the file has no fold column

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def has_labels(self) -> bool:
        return bool((self.labels != UNKNOWN).all())


def write_scores(path, scores, labels, path1, path2, folds=None) -> None:
    """Write atomically. `labels` are integers (-1 written as UNKNOWN_TEXT) or label texts,
    echoed as given so a test list's placeholder survives into the submission file."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    cols = {"labels": labels, "path1": path1, "path2": path2, **({"folds": folds} if folds is not None else {})}
    wrong = [f"{k} has {len(v)} entries" for k, v in cols.items() if len(v) != n]
    if wrong:
        raise DataError(f"{path}: {n} scores but " + ", ".join(wrong))
    if not np.isfinite(scores).all():
        bad = np.flatnonzero(~np.isfinite(scores))
        raise DataError(f"{path}: {len(bad)} score(s) are NaN or infinite (pairs {bad[:5].tolist()})")
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iub":
        values = labels.astype(np.int64)
        labels = list(map(str, values.tolist()))
        for i in np.flatnonzero(values == UNKNOWN).tolist():
            labels[i] = UNKNOWN_TEXT
    else:
        labels = list(map(str, labels))
    text_cols = [labels, list(map(str, path1)), list(map(str, path2))]
    if folds is not None:
        text_cols.append(list(map(str, np.asarray(folds).astype(np.int64).tolist())))
    _check_fields(path, text_cols)
    lines = map(",".join, zip(map(repr, scores.tolist()), *text_cols))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
        fh.write("\n" if n else "")


def _check_fields(path, cols: list[list[str]]) -> None:
    # A comma or line break inside a field would silently shift the columns on reading.
    if not any("," in s or "\n" in s or "\r" in s for s in ("".join(c) for c in cols)):
        return
    problems = [f"pair {i}: field {v!r} contains a comma or line break"
                for c in cols for i, v in enumerate(c) if "," in v or "\n" in v or "\r" in v]
    raise ValidationError(f"cannot write scores file {path}", problems)


def read_scores(path, *, unknown_label: str | None = None) -> Scores:
    """Parse and validate the whole file. Labels must be 0 or 1, except that lines whose label
    is exactly `unknown_label` (a test list's placeholder, e.g. "-1" or "") read as -1.
    Blank lines and lines starting with '#' are skipped."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: scores file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read scores file ({exc})") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and not lines[-1]:
        lines.pop()
    label_map = {"0": 0, "1": 1}
    if unknown_label is not None:
        label_map[unknown_label.strip()] = UNKNOWN
    out = _read_fast(lines, label_map) or _read_slow(path, lines, label_map)
    if not len(out):
        raise DataError(f"{path}: no scores")
    return out


def _skip(line: str) -> bool:
    return not line.strip() or line.startswith("#")


def _read_fast(lines: list[str], label_map: dict) -> Scores | None:
    """Column-wise parse of a well-formed file, or None to hand over to _read_slow.

    One flat split of the whole body makes a single list of strings (per-line lists would
    be millions of GC-tracked objects, several times slower); columns are then slices."""
    body = [line for line in lines if line and line[0] != "#"]
    commas = set(map(str.count, body, repeat(",")))
    if len(commas) != 1 or commas - {3, 4}:
        return None
    width = commas.pop() + 1
    joined = ",".join(body)
    fields = joined.split(",")
    if " " in joined or "\t" in joined or "\r" in joined:
        fields = list(map(str.strip, fields))
    n = len(body)
    try:
        scores = np.fromiter(map(float, fields[0::width]), np.float64, n)
        labels = np.fromiter(map(label_map.__getitem__, fields[1::width]), np.int8, n)
        folds = np.fromiter(map(int, fields[4::width]), np.int64, n) if width == 5 else None
    except (ValueError, KeyError):
        return None
    path1, path2 = fields[2::width], fields[3::width]
    if not np.isfinite(scores).all() or not all(path1) or not all(path2):
        return None
    return Scores(scores, labels, path1, path2, folds)


def _read_slow(path, lines: list[str], label_map: dict) -> Scores:
    scores, labels, p1, p2, folds, problems = [], [], [], [], [], []
    with_fold, without_fold = [], []
    for lineno, line in enumerate(lines, 1):
        if _skip(line):
            continue
        parts = [c.strip() for c in line.split(",")]
        where = f"{path}:{lineno}"
        if len(parts) not in (4, 5):
            problems.append(f"{where}: expected 4 or 5 columns 'score,label,path1,path2[,fold]', "
                            f"got {len(parts)}: {line!r}")
            continue
        (with_fold if len(parts) == 5 else without_fold).append(lineno)
        bad, s, fold = [], None, None
        try:
            s = float(parts[0])
            if not math.isfinite(s):
                bad.append(f"score is not finite: {parts[0]!r}")
        except ValueError:
            bad.append(f"score is not a number: {parts[0]!r}")
        if parts[1] not in label_map:
            bad.append(f"label must be {' or '.join(map(repr, label_map))}, got {parts[1]!r}")
        if not parts[2] or not parts[3]:
            bad.append("empty image path")
        if len(parts) == 5:
            try:
                fold = int(parts[4])
            except ValueError:
                bad.append(f"fold must be an integer, got {parts[4]!r}")
        if bad:
            problems += [f"{where}: {b}" for b in bad]
            continue
        scores.append(s)
        labels.append(label_map[parts[1]])
        p1.append(parts[2])
        p2.append(parts[3])
        folds.append(fold)
    if with_fold and without_fold:
        few = min(with_fold, without_fold, key=len)
        problems.append(f"{path}: the fold column must be on every line or on none; lines "
                        f"{', '.join(map(str, few[:10]))}{' ...' if len(few) > 10 else ''} "
                        f"{'have' if few is with_fold else 'lack'} it")
    if problems:
        raise ValidationError(f"scores file {path}", problems)
    return Scores(np.array(scores, np.float64), np.array(labels, np.int8), p1, p2,
                  np.array(folds, np.int64) if with_fold else None)
