"""Train lists (identity folders or `identity relpath` files) and pair CSVs (`label,path1,path2[,fold]`).

Everything is validated up front: every missing file and malformed line is collected and
reported together, with line numbers, before any work starts.

A list file may start with a `# root: DIR` comment (written by `facerec lists`/`split`) so the
tools know the image root without `--root`; course files without it work with `--root`.
"""

from __future__ import annotations

import logging
import os
import stat
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facerec.data.listfile import (
    IMAGE_EXTS,
    UNKNOWN_LABEL,
    plain_train_line,
    resolve_root,
    train_line,
    train_line_fields,
    train_list_form,
)
from facerec.data.pairs import PairList, read_pairs, write_pairs
from facerec.data.strings import Strings, StringsBuilder
from facerec.errors import DataError, ValidationError, cannot_read
from facerec.util.fileio import write_text

# Pair lists live in pairs.py; they are re-exported here, where the tools have always imported them.
__all__ = ["IMAGE_EXTS", "UNKNOWN_LABEL", "LabelNames", "PairList", "TrainList", "load_train", "read_pairs",
           "read_train_list", "scan_identity_folder", "stat_files", "write_pairs", "write_train_list"]

log = logging.getLogger(__name__)


class LabelNames(Sequence):
    """The identity of each image, as a view over (labels, classes): no string per image."""

    def __init__(self, labels: np.ndarray, classes: list[str]):
        self.labels, self.classes = labels, classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.classes[j] for j in self.labels[i]]
        return self.classes[self.labels[i]]

    def __iter__(self):
        classes = self.classes
        return (classes[j] for j in self.labels.tolist())

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))


class TrainList:
    """Images (paths relative to `root`) and their integer labels into `classes`, the sorted
    identity names (face_trainer's class index). Paths are held compactly (`Strings`), labels as
    one int64 array, so a list of a million images costs tens of MB, not GBs.

    `stats` is (size, mtime_ns) per image once something has stat'ed the files (the list
    reader's existence check does), so later steps (leakage digests, store key) never stat twice.
    """

    def __init__(self, root, paths, identities=None, *, classes=None, labels=None, source: str = "",
                 stats: tuple[np.ndarray, np.ndarray] | None = None):
        self.root = Path(root)
        self.paths = paths if isinstance(paths, Strings) else Strings(paths)
        if labels is None:
            identities = list(identities)
            self.classes = list(classes) if classes else sorted(set(identities))
            index = {c: i for i, c in enumerate(self.classes)}
            labels = np.fromiter((index[i] for i in identities), dtype=np.int64, count=len(identities))
        else:
            self.classes = list(classes)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.source = source
        self.stats = stats
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def identities(self) -> LabelNames:
        return LabelNames(self.labels, self.classes)

    def abspath(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def abspaths(self) -> list[str]:
        """Every absolute path as a list: fine for small sets; large ones should index `abspath`."""
        root = str(self.root)
        return [os.path.join(root, p) for p in self.paths]

    def file_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(size, mtime_ns) of every image, stat'ed once and kept."""
        if self.stats is None:
            self.stats = stat_files(str(self.root), self.paths, self.source)
        return self.stats

    def subset(self, keep_identities) -> TrainList:
        keep = set(keep_identities)
        keep_labels = np.array([i for i, c in enumerate(self.classes) if c in keep], dtype=np.int64)
        rows = np.flatnonzero(np.isin(self.labels, keep_labels))
        classes = [self.classes[i] for i in keep_labels]
        remap = np.full(len(self.classes), -1, dtype=np.int64)
        remap[keep_labels] = np.arange(len(keep_labels))
        stats = None if self.stats is None else (self.stats[0][rows], self.stats[1][rows])
        return TrainList(self.root, self.paths.take(rows), classes=classes, labels=remap[self.labels[rows]],
                         source=self.source, stats=stats)


def stat_files(root: str, paths, source: str = "") -> tuple[np.ndarray, np.ndarray]:
    n = len(paths)
    size, mtime = np.empty(n, np.int64), np.empty(n, np.int64)
    for i, p in enumerate(paths):
        try:
            st = os.stat(os.path.join(root, p))
        except OSError as exc:
            raise cannot_read(os.path.join(root, p), exc) from None
        size[i], mtime[i] = st.st_size, st.st_mtime_ns
    return size, mtime


def scan_identity_folder(root) -> TrainList:
    """`root/<identity>/<image>`; class index = sorted identity names. Directory listings only:
    no image is opened or stat'ed here (a listed name exists), so a million images scan in seconds."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: identity folder not found")
    paths, counts, classes, problems, stray = StringsBuilder(), [], [], [], []
    with os.scandir(root) as it:
        idents = sorted(e.name for e in it if e.is_dir())
    for ident in idents:
        d = os.path.join(root, ident)
        names = os.listdir(d)
        images = sorted(f for f in names if f.lower().endswith(IMAGE_EXTS))
        if len(images) < len(names):
            stray += [os.path.join(ident, f) for f in names if not f.lower().endswith(IMAGE_EXTS)][:3]
        if not images:
            problems.append(f"{d}: empty identity folder (no {'/'.join(IMAGE_EXTS)} images)")
            continue
        paths.extend(f"{ident}/{f}" for f in images)
        classes.append(ident)
        counts.append(len(images))
    if problems:
        raise ValidationError(f"identity folder {root}", problems)
    if not classes:
        raise DataError(f"{root}: no identity sub-folders with images")
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    if stray:
        log.warning("%s: skipped files that are not %s images (e.g. %s)", root, "/".join(IMAGE_EXTS),
                    ", ".join(sorted(stray)[:3]))
    return TrainList(root, paths.build(), classes=classes, labels=labels, source=str(root))


def _first_line(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as fh:
        return [fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")]


def read_train_list(path, root=None, check_files: bool = True) -> TrainList:
    """face_trainer's train list: one `identity relpath` per line, or `identity<TAB>relpath`, or a CSV
    line (`.csv`/`.tsv` files, or a line that starts with a quote; see `listfile.train_line_fields`),
    so names may hold spaces. In a tab or CSV list, a first line naming no image is a header row: skipped,
    with a note. Read as a stream (a million
    lines never become a million Python objects); with check_files each image is stat'ed once and
    its (size, mtime) kept for the leakage digests."""
    path = Path(path)
    root = resolve_root(path, _first_line(path), root)
    root_s = str(root)
    builder, problems = StringsBuilder(), []
    class_of: dict[str, int] = {}
    labels, sizes, mtimes = array("q"), array("q"), array("q")
    chunk: list[str] = []
    form = train_list_form(path)
    first = True
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = train_line_fields(line, form)
                if first and len(parts) == 2 and not plain_train_line(line, form) \
                        and not parts[1].lower().endswith(IMAGE_EXTS) and not os.path.isfile(os.path.join(root_s, parts[1])):
                    # A spreadsheet's header row (`identity,path`): no image by that name, nor an image's
                    # extension (a missing image on the first line stays an error).
                    first = False
                    log.warning("%s:%d: first line %r names no image: taken as a header row and skipped", path,
                                lineno, line.rstrip("\r\n"))
                    continue
                first = False
                if len(parts) != 2 or not all(parts):
                    problems.append(f"{path}:{lineno}: expected 'identity relpath' (or identity<TAB>relpath, or "
                                    f"a CSV line \"identity\",\"relpath\"), got {line.rstrip(chr(10) + chr(13))!r}")
                    continue
                ident, rel = parts
                if check_files:
                    try:
                        st = os.stat(os.path.join(root_s, rel))
                    except OSError:
                        problems.append(f"{path}:{lineno}: image not found: {root / rel}")
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        problems.append(f"{path}:{lineno}: not an image file: {root / rel}")
                        continue
                    if st.st_size == 0:
                        problems.append(f"{path}:{lineno}: empty (zero-byte) image: {root / rel}")
                        continue
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime_ns)
                labels.append(class_of.setdefault(ident, len(class_of)))
                chunk.append(rel)
                if len(chunk) >= 65536:
                    builder.extend(chunk)
                    chunk = []
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from None
    builder.extend(chunk)
    if problems:
        raise ValidationError(f"train list {path}", problems)
    if not labels:
        raise DataError(f"{path}: train list is empty")
    classes = sorted(class_of)
    remap = np.empty(len(classes), dtype=np.int64)
    remap[[class_of[c] for c in classes]] = np.arange(len(classes))
    stats = (np.frombuffer(sizes, np.int64).copy(), np.frombuffer(mtimes, np.int64).copy()) if check_files else None
    return TrainList(root, builder.build(), classes=classes, labels=remap[np.frombuffer(labels, np.int64)],
                     source=str(path), stats=stats)


def load_train(spec, root=None, check_files: bool = True) -> TrainList:
    """An identity folder or a train list file."""
    spec = Path(spec)
    if spec.is_dir():
        return scan_identity_folder(spec)
    return read_train_list(spec, root, check_files)


def write_train_list(path, root, paths, identities) -> None:
    """`identity relpath` lines; a name with spaces gets the tab (or quoted CSV) form, read back the same."""
    body = "".join(train_line(i, p) + "\n" for p, i in zip(paths, identities))
    write_text(path, f"# root: {Path(root).resolve()}\n{body}")


