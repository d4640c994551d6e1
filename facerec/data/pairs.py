"""Pair CSVs: `label,path1,path2[,fold]` (validation, View 2) or `path1,path2` (test lists)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.data.listfile import IMAGE_EXTS, UNKNOWN_LABEL, entries, raise_problems, read_lines, resolve_root
from facerec.util.fileio import write_text

log = logging.getLogger(__name__)


@dataclass
class PairList:
    root: Path
    labels: np.ndarray  # int8: 1 same, 0 different, -1 unknown (test lists)
    path1: list[str]
    path2: list[str]
    folds: np.ndarray | None = None
    source: str = ""
    label_text: list[str] | None = None  # as read, echoed into submission files

    def __len__(self) -> int:
        return len(self.path1)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels != UNKNOWN_LABEL).all())

    def subset_folds(self, folds) -> PairList:
        """The pairs of these folds only (View 2's fold column)."""
        if self.folds is None:
            raise ValueError(f"{self.source}: no fold column")
        keep = np.isin(self.folds, list(folds))
        idx = np.flatnonzero(keep)
        return PairList(self.root, self.labels[keep], [self.path1[i] for i in idx], [self.path2[i] for i in idx],
                        self.folds[keep], source=self.source,
                        label_text=None if self.label_text is None else [self.label_text[i] for i in idx])

    def unique_paths(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Each image once, plus the index of path1/path2 into that list."""
        uniq = sorted(set(self.path1) | set(self.path2))
        index = {p: i for i, p in enumerate(uniq)}
        return uniq, np.array([index[p] for p in self.path1]), np.array([index[p] for p in self.path2])


def _is_header(parts: list[str], root: Path) -> bool:
    """A spreadsheet's header row (`label,path1,path2`): a label that is not 0/1 and paths naming no file,
    nor with an image's extension (a first pair whose images are missing stays an error)."""
    paths = [x for x in parts[1:3] if x]
    return (len(parts) in (3, 4) and parts[0] not in ("0", "1") and len(paths) == 2
            and not any(x.lower().endswith(IMAGE_EXTS) or (root / x).is_file() for x in paths))


def read_pairs(path, root=None, *, allow_unknown: bool = False, check_files: bool = True,
               allow_duplicates: bool | None = None) -> PairList:
    """Pair CSV `label,path1,path2[,fold]`; with allow_unknown a test list may omit the label
    (`path1,path2`) or carry a non-0/1 placeholder. A first line whose label is not 0/1 and whose paths
    name no file is a header row (`label,path1,path2`, as spreadsheets write it): skipped, with a note.
    Repeated pairs are kept (and said) when
    scoring (default: with allow_unknown) and refused for validation, where one would count twice."""
    if allow_duplicates is None:
        allow_duplicates = allow_unknown
    path = Path(path)
    lines = read_lines(path)
    root = resolve_root(path, lines, root)
    labels, p1, p2, folds, texts, problems, rows = [], [], [], [], [], [], []
    seen: dict[tuple[str, str], int] = {}
    duplicates: list[str] = []
    first = True
    for lineno, line in entries(lines):
        parts = [c.strip().strip('"').strip() for c in line.split(",")]  # spreadsheet exports quote fields
        if len(parts) == 2 and allow_unknown:
            parts = [""] + parts
        if first and _is_header(parts, root):
            first = False
            log.warning("%s:%d: first line %r is not a pair (no 0/1 label, no such images): taken as a header row "
                        "and skipped", path, lineno, line)
            continue
        first = False
        if len(parts) not in (3, 4):
            problems.append(f"{path}:{lineno}: expected 'label,path1,path2[,fold]', got {line!r}")
            continue
        label_text, a, b = parts[:3]
        if label_text in ("0", "1"):
            label = int(label_text)
        elif allow_unknown:
            label = UNKNOWN_LABEL
        else:
            problems.append(f"{path}:{lineno}: label must be 0 or 1, got {label_text!r}")
            continue
        fold = None
        if len(parts) == 4:
            try:
                fold = int(parts[3])
            except ValueError:
                problems.append(f"{path}:{lineno}: fold must be an integer, got {parts[3]!r}")
                continue
        if not a or not b:
            problems.append(f"{path}:{lineno}: empty image path")
            continue
        key = (a, b) if a <= b else (b, a)
        if key in seen and not allow_duplicates:  # validation: a repeated pair would weigh twice in the EER
            problems.append(f"{path}:{lineno}: duplicate pair (first on line {seen[key]}): {a}, {b}")
            continue
        if key in seen:  # scoring: a submission scores its test list line for line, repeats included
            duplicates.append(f"{path}:{lineno}: duplicate of line {seen[key]} ({a}, {b})")
        seen.setdefault(key, lineno)
        if fold is not None:
            folds.append(fold)
        labels.append(label)
        texts.append(label_text)
        p1.append(a)
        p2.append(b)
        rows += [(lineno, a), (lineno, b)]
    if folds and len(folds) != len(p1):
        problems.append(f"{path}: the fold column must be on every line or on none")
    known = [lab != UNKNOWN_LABEL for lab in labels]
    if any(known) and not all(known):
        # A test list's placeholder labels are all alike; a stray one in a labelled list is a typo.
        problems += [f"{path}:{seen[(a, b) if a <= b else (b, a)]}: label must be 0 or 1, got {t!r}"
                     for a, b, t, k in zip(p1, p2, texts, known) if not k]
    raise_problems("pair list", path, root, rows, problems, check_files, len(p1))
    if duplicates:
        log.warning("%s: %d duplicate pair(s), each scored on its own line (first: %s)", path, len(duplicates),
                    duplicates[0])
    return PairList(
        root,
        np.array(labels, dtype=np.int8),
        p1,
        p2,
        np.array(folds, dtype=np.int64) if folds else None,
        source=str(path),
        label_text=texts,
    )


def write_pairs(path, root, labels, path1, path2, folds=None) -> None:
    if folds is None:
        body = "".join(f"{y},{a},{b}\n" for y, a, b in zip(labels, path1, path2))
    else:
        body = "".join(f"{y},{a},{b},{f}\n" for y, a, b, f in zip(labels, path1, path2, folds))
    write_text(path, f"# root: {Path(root).resolve()}\n{body}")
