"""Train lists (identity folders or `identity relpath` files) and pair CSVs (`label,path1,path2[,fold]`).

Everything is validated up front: every missing file and malformed line is collected and
reported together, with line numbers, before any work starts.

A list file may start with a `# root: DIR` comment (written by `facerec lists`/`split`) so the
tools know the image root without `--root`; course files without it work with `--root`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FacerecError, ValidationError
from ..fileio import write_text

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
UNKNOWN_LABEL = -1


@dataclass
class TrainList:
    root: Path
    paths: list[str]  # relative to root
    identities: list[str]  # one per path
    classes: list[str] = field(default_factory=list)  # sorted identity names (face_trainer's class index)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    source: str = ""

    def __post_init__(self):
        if not self.classes:
            self.classes = sorted(set(self.identities))
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([index[i] for i in self.identities], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def abspaths(self) -> list[str]:
        return [os.path.join(self.root, p) for p in self.paths]

    def subset(self, keep_identities) -> "TrainList":
        keep = set(keep_identities)
        rows = [(p, i) for p, i in zip(self.paths, self.identities) if i in keep]
        return TrainList(self.root, [p for p, _ in rows], [i for _, i in rows], source=self.source)


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

    def unique_paths(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Each image once, plus the index of path1/path2 into that list."""
        uniq = sorted(set(self.path1) | set(self.path2))
        index = {p: i for i, p in enumerate(uniq)}
        return uniq, np.array([index[p] for p in self.path1]), np.array([index[p] for p in self.path2])


def _root_comment(lines: list[str]) -> str | None:
    if lines and lines[0].startswith("# root:"):
        return lines[0].split(":", 1)[1].strip()
    return None


def _resolve_root(list_path: Path, lines: list[str], root) -> Path:
    if root is not None:
        return Path(root)
    declared = _root_comment(lines)
    if declared is not None:
        declared_path = Path(declared)
        return declared_path if declared_path.is_absolute() else (list_path.parent / declared_path)
    return list_path.parent


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FacerecError(f"{path}: file not found")
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise FacerecError(f"{path}: not a text file ({exc})") from None


def _entries(lines: list[str]):
    """(line number, line) for every line that is not blank or a `#` comment."""
    return ((n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#"))


def _raise_problems(what: str, path: Path, root: Path, rows, problems: list[str], check_files: bool, n: int) -> None:
    """Every problem of a list, missing images included, in one error; then refuse an empty list."""
    if check_files:
        problems = problems + _missing_files(root, rows, path)
    if problems:
        raise ValidationError(f"{what} {path}", problems)
    if not n:
        raise FacerecError(f"{path}: {what} is empty")


def _missing_files(root: Path, rel_with_line: list[tuple[int, str]], source: Path) -> list[str]:
    problems = []
    seen = set()
    for lineno, rel in rel_with_line:
        if rel in seen:
            continue
        seen.add(rel)
        if not (root / rel).is_file():
            problems.append(f"{source}:{lineno}: image not found: {root / rel}")
    return problems


def scan_identity_folder(root) -> TrainList:
    """`root/<identity>/<image>`; class index = sorted identity names."""
    root = Path(root)
    if not root.is_dir():
        raise FacerecError(f"{root}: identity folder not found")
    paths, ids, problems = [], [], []
    for ident in sorted(os.listdir(root)):
        d = root / ident
        if not d.is_dir():
            continue
        images = sorted(f for f in os.listdir(d) if f.lower().endswith(IMAGE_EXTS))
        if not images:
            problems.append(f"{d}: empty identity folder (no {'/'.join(IMAGE_EXTS)} images)")
            continue
        for f in images:
            paths.append(f"{ident}/{f}")
            ids.append(ident)
    if problems:
        raise ValidationError(f"identity folder {root}", problems)
    if not paths:
        raise FacerecError(f"{root}: no identity sub-folders with images")
    return TrainList(root, paths, ids, source=str(root))


def read_train_list(path, root=None, check_files: bool = True) -> TrainList:
    """face_trainer's train list: one `identity relpath` per line."""
    path = Path(path)
    lines = _read_lines(path)
    root = _resolve_root(path, lines, root)
    paths, ids, problems, rows = [], [], [], []
    for lineno, line in _entries(lines):
        parts = line.split()
        if len(parts) != 2:
            problems.append(f"{path}:{lineno}: expected 'identity relpath', got {line!r}")
            continue
        ids.append(parts[0])
        paths.append(parts[1])
        rows.append((lineno, parts[1]))
    _raise_problems("train list", path, root, rows, problems, check_files, len(paths))
    return TrainList(root, paths, ids, source=str(path))


def load_train(spec, root=None, check_files: bool = True) -> TrainList:
    """An identity folder or a train list file."""
    spec = Path(spec)
    if spec.is_dir():
        return scan_identity_folder(spec)
    return read_train_list(spec, root, check_files)


def read_pairs(path, root=None, *, allow_unknown: bool = False, check_files: bool = True) -> PairList:
    """Pair CSV `label,path1,path2[,fold]`; with allow_unknown a test list may omit the label
    (`path1,path2`) or carry a non-0/1 placeholder."""
    path = Path(path)
    lines = _read_lines(path)
    root = _resolve_root(path, lines, root)
    labels, p1, p2, folds, texts, problems, rows = [], [], [], [], [], [], []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _entries(lines):
        parts = [c.strip() for c in line.split(",")]
        if len(parts) == 2 and allow_unknown:
            parts = [""] + parts
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
        if key in seen:
            problems.append(f"{path}:{lineno}: duplicate pair (first on line {seen[key]}): {a}, {b}")
            continue
        seen[key] = lineno
        if fold is not None:
            folds.append(fold)
        labels.append(label)
        texts.append(label_text)
        p1.append(a)
        p2.append(b)
        rows += [(lineno, a), (lineno, b)]
    if folds and len(folds) != len(p1):
        problems.append(f"{path}: the fold column must be on every line or on none")
    known = [l != UNKNOWN_LABEL for l in labels]
    if any(known) and not all(known):
        # A test list's placeholder labels are all alike; a stray one in a labelled list is a typo.
        problems += [f"{path}:{seen[(a, b) if a <= b else (b, a)]}: label must be 0 or 1, got {t!r}"
                     for a, b, t, k in zip(p1, p2, texts, known) if not k]
    _raise_problems("pair list", path, root, rows, problems, check_files, len(p1))
    return PairList(
        root,
        np.array(labels, dtype=np.int8),
        p1,
        p2,
        np.array(folds, dtype=np.int64) if folds else None,
        source=str(path),
        label_text=texts,
    )


def write_train_list(path, root, paths, identities) -> None:
    body = "".join(f"{i} {p}\n" for p, i in zip(paths, identities))
    write_text(path, f"# root: {Path(root).resolve()}\n{body}")


def write_pairs(path, root, labels, path1, path2, folds=None) -> None:
    if folds is None:
        body = "".join(f"{l},{a},{b}\n" for l, a, b in zip(labels, path1, path2))
    else:
        body = "".join(f"{l},{a},{b},{f}\n" for l, a, b, f in zip(labels, path1, path2, folds))
    write_text(path, f"# root: {Path(root).resolve()}\n{body}")
