"""Identity k-fold cross-validation (`facerec train --folds K`).

The train identities with two or more images are dealt into K folds (seeded); fold i trains on
every other identity and validates on balanced pairs of fold i's identities (never seen in
training). Single-image identities cannot form positive pairs, so they always train. Each fold
is an ordinary run in RUN/fold<i>/; RUN/cv.json holds every fold's metrics and EER mean +- std.
A fold that already finished is reused, so an interrupted CV continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from facerec.config import DATA_KEYS, check_same_recipe
from facerec.data.lists import TrainList, load_train, write_pairs, write_train_list
from facerec.data.split import balanced_pairs
from facerec.errors import FacerecError
from facerec.evaluation.metric_keys import upgrade_summary
from facerec.util.fileio import write_text

SMALL_FOLD_IMAGES = 500  # below this, three positive and three negative partners per image


def fold_identities(train: TrainList, k: int, seed: int) -> list[list[str]]:
    counts = Counter(train.identities)
    eligible = sorted(c for c, n in counts.items() if n >= 2)
    if len(eligible) < 2 * k:
        raise FacerecError(f"{train.source or train.root}: {k} folds need at least {2 * k} identities with two or more "
                           f"images, found {len(eligible)}")
    order = np.random.default_rng(seed).permutation(len(eligible))
    return [sorted(eligible[j] for j in order[i::k]) for i in range(k)]


def write_fold_lists(train: TrainList, k: int, seed: int, out: Path) -> list[tuple[Path, Path]]:
    lists = []
    for i, held in enumerate(fold_identities(train, k, seed)):
        held_set = set(held)
        tr = train.subset([c for c in train.classes if c not in held_set])
        va = train.subset(held)
        per_image = 3 if len(va) < SMALL_FOLD_IMAGES else 1
        labels, p1, p2 = balanced_pairs(va.paths, va.identities, seed + i, per_image)
        d = out / f"fold{i + 1}"
        write_train_list(d / "train.txt", train.root, tr.paths, tr.identities)
        write_pairs(d / "val_pairs.csv", train.root, labels, p1, p2)
        lists.append((d / "train.txt", d / "val_pairs.csv"))
    return lists


def cross_validate(cfg, *, progress: bool = True, log=None) -> int:
    note = logging.getLogger("facerec.experiments.cv").warning if log is None else (lambda msg: log(f"note: {msg}"))
    log = log or logging.getLogger("facerec.experiments.cv").info
    from facerec.trainer import Trainer, default_lfw_lists, run_name
    from facerec.util.rundir import status

    if cfg.train is None:
        default_lfw_lists(cfg)
    if cfg.val:
        note(f"--folds validates on held-out identity folds; {cfg.val} is not used")
    train = load_train(cfg.train, cfg.root)
    base = Path(cfg.run_dir) if cfg.run_dir else Path(cfg.out) / f"{run_name(cfg)}-cv{cfg.folds}"
    folds = []
    for i in range(1, cfg.folds + 1):
        c = copy.deepcopy(cfg)
        c.folds, c.root, c.val_root, c.run_dir = 0, None, None, str(base / f"fold{i}")
        # Every fold is checked before anything is written or trained: a changed recipe under the
        # same name (say `--epochs 20`) must not reuse the old folds.
        check_same_recipe(base / f"fold{i}" / "config.yaml", c.to_dict(), DATA_KEYS,
                          f"use --run-dir for a new folder, or delete {base} to run the folds again")
        folds.append(c)
    for c, (tr, va) in zip(folds, write_fold_lists(train, cfg.folds, cfg.seed, base)):
        c.train, c.val = str(tr), str(va)
    results = []
    for i, c in enumerate(folds, 1):
        fold_dir = Path(c.run_dir)
        run_status = status(fold_dir)
        if run_status != "done":
            log(f"fold {i}/{cfg.folds}: {load_train(c.train, check_files=False).num_classes} train identities")
            if run_status == "resume":
                c.resume = str(fold_dir)
            Trainer(c, progress=progress, log=log).fit()
        summary = upgrade_summary(json.loads((fold_dir / "summary.json").read_text()))
        results.append({"fold": i, "run_dir": str(fold_dir), **(summary.get("best_metrics") or {})})
    eers = np.array([r["eer"] for r in results])
    out = {"folds": cfg.folds, "seed": cfg.seed, "eer_mean": float(eers.mean()), "eer_std": float(eers.std(ddof=1)),
           "per_fold": results, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    from facerec.evaluation.metrics import jsonable

    write_text(base / "cv.json", json.dumps(jsonable(out), indent=2))
    log(f"{cfg.folds}-fold identity CV: EER {out['eer_mean']:.2f} ± {out['eer_std']:.2f}% "
        f"(folds: {', '.join(f'{e:.2f}' for e in eers)}) | {base / 'cv.json'}")
    return 0
