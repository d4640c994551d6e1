"""LFW: find the images and protocol files, and turn View 1 / View 2 into facerec lists.

Accepted layouts under a data root:
  lfw/images_deepfunneled/ + lfw/*.txt           (the official site's files)
  lfw/lfw_funneled/ + lfw/*.txt                  (the funneled tarball unpacked)
  lfw_home/lfw_funneled/ + lfw_home/pairs*.txt   (scikit-learn's downloader, `facerec data fetch lfw`)
scikit-learn does not fetch peopleDevTrain.txt/people.txt: then View 1's training identities are
every identity that is not in pairsDevTest (the protocol keeps them disjoint), and View 2's
per-fold people are read from pairs.txt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.data.lists import write_pairs, write_train_list
from facerec.errors import DataError

LAYOUTS = [
    ("lfw/images_deepfunneled", "lfw"),
    ("lfw/lfw_funneled", "lfw"),
    ("lfw_home/lfw_funneled", "lfw_home"),
    ("lfw_funneled", "."),
]


@dataclass
class LfwLayout:
    images: Path
    protocol: Path

    def image(self, name: str, index: int) -> str:
        return f"{name}/{name}_{index:04d}.jpg"


def find(data_root) -> LfwLayout:
    data_root = Path(data_root)
    for images, protocol in LAYOUTS:
        if (data_root / images).is_dir():
            return LfwLayout(data_root / images, data_root / protocol)
    tried = ", ".join(str(data_root / i) for i, _ in LAYOUTS)
    raise DataError(f"LFW images not found under {data_root} (tried {tried}); `facerec data fetch lfw` downloads them")


def _protocol_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: LFW protocol file not found")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def read_pairs_file(path: Path, layout: LfwLayout):
    """LFW pairs format -> (labels, path1, path2, folds). Header: `n` or `folds n`."""
    rows = _protocol_lines(path)
    header, body = rows[0], rows[1:]
    n_folds, per_fold = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    if len(body) != n_folds * 2 * per_fold:
        raise DataError(f"{path}: header promises {n_folds}x2x{per_fold} pairs, file has {len(body)}")
    labels, p1, p2, folds = [], [], [], []
    for k, r in enumerate(body):
        lineno = k + 2
        if len(r) == 3:
            labels.append(1)
            p1.append(layout.image(r[0], int(r[1])))
            p2.append(layout.image(r[0], int(r[2])))
        elif len(r) == 4:
            labels.append(0)
            p1.append(layout.image(r[0], int(r[1])))
            p2.append(layout.image(r[2], int(r[3])))
        else:
            raise DataError(f"{path}:{lineno}: expected 3 or 4 tab-separated fields, got {len(r)}")
        folds.append(k // (2 * per_fold) + 1)
    return labels, p1, p2, folds


def read_people_file(path: Path) -> list[list[tuple[str, int]]]:
    """people.txt / peopleDev*.txt -> one list of (name, n_images) per fold."""
    rows = _protocol_lines(path)
    if len(rows[0]) != 1:
        raise DataError(f"{path}:1: expected a count")
    # peopleDev*.txt: one block; people.txt: a fold count then blocks, each led by its size.
    if len(rows) == int(rows[0][0]) + 1:
        return [[(r[0], int(r[1])) for r in rows[1:]]]
    folds, i = [], 1
    for _ in range(int(rows[0][0])):
        size = int(rows[i][0])
        folds.append([(r[0], int(r[1])) for r in rows[i + 1 : i + 1 + size]])
        i += 1 + size
    return folds


def _people_images(layout: LfwLayout, people) -> tuple[list[str], list[str]]:
    paths, ids = [], []
    for name, n in people:
        for i in range(1, n + 1):
            paths.append(layout.image(name, i))
            ids.append(name)
    return paths, ids


def _all_people(layout: LfwLayout) -> list[tuple[str, int]]:
    return [(d.name, sum(1 for _ in d.glob("*.jpg"))) for d in sorted(layout.images.iterdir()) if d.is_dir()]


def write_lists(data_root, out_dir) -> list[Path]:
    """View 1 (train list from peopleDevTrain, val pairs from pairsDevTest) and View 2
    (pairs with folds, a train list per fold from the other nine folds' people)."""
    layout = find(data_root)
    out = Path(out_dir)
    written = []

    dev_test = read_pairs_file(layout.protocol / "pairsDevTest.txt", layout)
    dev_train_people = layout.protocol / "peopleDevTrain.txt"
    if dev_train_people.is_file():
        people = read_people_file(dev_train_people)[0]
    else:
        test_ids = {p.split("/")[0] for p in dev_test[1] + dev_test[2]}
        people = [(n, k) for n, k in _all_people(layout) if n not in test_ids]
    paths, ids = _people_images(layout, people)
    write_train_list(out / "view1_train.txt", layout.images, paths, ids)
    write_pairs(out / "view1_val_pairs.csv", layout.images, *dev_test[:3])
    written += [out / "view1_train.txt", out / "view1_val_pairs.csv"]
    # Two identity-disjoint halves of the View 1 training people: pretrain on one, fine-tune on the other.
    order = np.random.default_rng(0).permutation(len(people))
    for half, sel in enumerate((order[: len(people) // 2], order[len(people) // 2 :]), 1):
        paths, ids = _people_images(layout, [people[i] for i in sorted(sel)])
        write_train_list(out / f"view1_train_half{half}.txt", layout.images, paths, ids)
        written.append(out / f"view1_train_half{half}.txt")
    dev_train_pairs = layout.protocol / "pairsDevTrain.txt"
    if dev_train_pairs.is_file():
        write_pairs(out / "view1_train_pairs.csv", layout.images, *read_pairs_file(dev_train_pairs, layout)[:3])
        written.append(out / "view1_train_pairs.csv")

    pairs_file = layout.protocol / "pairs.txt"
    if pairs_file.is_file():
        labels, p1, p2, folds = read_pairs_file(pairs_file, layout)
        write_pairs(out / "view2_pairs.csv", layout.images, labels, p1, p2, folds)
        written.append(out / "view2_pairs.csv")
        people_file = layout.protocol / "people.txt"
        if people_file.is_file():
            fold_people = read_people_file(people_file)
        else:
            fold_people = _fold_people_from_pairs(p1, p2, folds, layout)
        for k in range(len(fold_people)):
            others = [p for j, fp in enumerate(fold_people) if j != k for p in fp]
            paths, ids = _people_images(layout, others)
            target = out / f"view2_train_fold{k + 1:02d}.txt"
            write_train_list(target, layout.images, paths, ids)
            written.append(target)
    return written


def _fold_people_from_pairs(p1, p2, folds, layout):
    counts = dict(_all_people(layout))
    by_fold: dict[int, set] = {}
    for a, b, f in zip(p1, p2, folds):
        by_fold.setdefault(f, set()).update({a.split("/")[0], b.split("/")[0]})
    return [[(n, counts[n]) for n in sorted(by_fold[f])] for f in sorted(by_fold)]


def fetch(data_root) -> Path:
    """Download LFW (funneled) and its pair files through scikit-learn's own downloader."""
    from sklearn.datasets import fetch_lfw_pairs

    data_root = Path(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    for subset in ("train", "test", "10_folds"):
        fetch_lfw_pairs(subset=subset, data_home=str(data_root), funneled=True, download_if_missing=True)
    return find(data_root).images
