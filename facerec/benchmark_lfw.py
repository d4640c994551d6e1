"""LFW View 2, "unrestricted, labeled outside data: none", as one command.

For each of the 10 folds: train from scratch on the people of the other nine folds (people.txt's
sets, so no identity of the test fold is seen; the leakage check runs against the fold's pairs),
take the last epoch's weights (no model selection on the test fold), score all 6,000 pairs, pick
the best-accuracy threshold on the other nine folds' 5,400 pairs and apply it to the fold's 600.
Those nine folds' people were trained on, so their threshold is chosen on seen identities: it
uses nothing of the test fold, which is what the protocol asks, at the price of a threshold tuned
on easier pairs. Reported: mean accuracy +- standard error over the folds, and EER, AUC, TAR@FAR
and a ROC/DET plot of the pooled test-fold scores. Finished folds are reused; an interrupted fold
resumes from its last.pt.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np

from .errors import FacerecError
from .fileio import write_text

log = logging.getLogger(__name__)


def parse_folds(spec: str) -> list[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise FacerecError(f"--folds: expected numbers like 1-10 or 1,3,5, got {spec!r}") from None
        if not 1 <= a <= b <= 10:
            raise FacerecError(f"--folds: folds are 1..10, got {spec!r}")
        out.update(range(a, b + 1))
    return sorted(out)


def lists(cfg) -> tuple[Path, Path]:
    """View 2's pair list (with its fold column) and the folder of per-fold train lists."""
    from . import dataroot
    from .data import lfw

    d = dataroot.lists_dir("lfw")
    if not (d / "view2_pairs.csv").is_file() or not (d / "view2_train_fold10.txt").is_file():
        lfw.write_lists(dataroot.resolve(cfg.data_root, need="lfw"), d)
    return d / "view2_pairs.csv", d


def fold_scores(run_dir: Path, pairs, progress: bool) -> np.ndarray:
    from .api import load

    m = load(run_dir / "last.pt", device="auto")
    uniq, i1, i2 = pairs.unique_paths()
    e = m.embed([str(pairs.root / p) for p in uniq], progress=progress)
    return (e[i1] * e[i2]).sum(1).astype(np.float64)


def fold_config(k: int, base_cfg, train_dir: Path, out: Path):
    """Fold k's training config (the other nine folds' people), checked against what its folder holds."""
    fold_dir = out / f"fold{k:02d}"
    cfg = copy.deepcopy(base_cfg)
    cfg.train, cfg.root, cfg.val, cfg.test_list = str(train_dir / f"view2_train_fold{k:02d}.txt"), None, None, None
    cfg.run_dir, cfg.resume = str(fold_dir / "run"), None
    _check_same_recipe(cfg, fold_dir)
    return cfg


def fold_done(k: int, out: Path) -> dict | None:
    done = out / f"fold{k:02d}" / "fold.json"
    return json.loads(done.read_text()) if done.is_file() else None


def run_fold(k: int, base_cfg, pairs, train_dir: Path, out: Path, progress: bool) -> dict:
    from . import metrics
    from .rundir import is_finished
    from .trainer import Trainer

    fold_dir = out / f"fold{k:02d}"
    done = fold_dir / "fold.json"
    cfg = fold_config(k, base_cfg, train_dir, out)
    if done.is_file():
        log.info("fold %d: finished earlier (%s)", k, done)
        return json.loads(done.read_text())
    if (fold_dir / "run" / "last.pt").is_file() and not is_finished(fold_dir / "run"):
        cfg.resume = str(fold_dir / "run")
    if not is_finished(fold_dir / "run"):
        _check_no_leak(cfg, pairs, k)
        Trainer(cfg, progress=progress).fit()
    s = fold_scores(fold_dir / "run", pairs, progress)
    test, rest = pairs.folds == k, pairs.folds != k
    _, thr = metrics.best_accuracy(s[rest], pairs.labels[rest])
    acc = float(np.mean((s[test] >= thr) == (pairs.labels[test] == 1)) * 100)
    result = {"fold": k, "accuracy": acc, "threshold": thr, "test_pairs": int(test.sum()),
              "run_dir": str(fold_dir / "run"), "scores": s[test].tolist(), "labels": pairs.labels[test].tolist()}
    write_text(done, json.dumps(result))
    log.info("fold %d: accuracy %.2f%% at threshold %.4f (chosen on the other folds' pairs)", k, acc, thr)
    return result


# Keys that change how a fold runs, not what it learns: a fold may be resumed or reused across them.
RUN_ONLY_KEYS = ("train", "root", "val", "val_root", "test_list", "run_dir", "workers", "device", "cache",
                 "cache_budget_mb", "dist_timeout", "log_steps", "out", "tag", "hypothesis", "data_root", "resume",
                 "initial_model")


def _check_same_recipe(cfg, fold_dir: Path) -> None:
    """A fold trained (or half-trained) with another recipe is never reused: `--set epochs=20`
    keeps the default results folder, so its old folds would silently stand in for new ones."""
    import yaml

    saved = fold_dir / "run" / "config.yaml"
    if not saved.is_file():
        return
    before, now = yaml.safe_load(saved.read_text()) or {}, cfg.to_dict()
    keys = sorted(k for k in set(before) | set(now) if k not in RUN_ONLY_KEYS and before.get(k) != now.get(k))
    if keys:
        diff = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys[:6])
        raise FacerecError(f"{saved}: this fold was trained with another recipe ({diff}); use --out for a new "
                           f"results folder, or delete {fold_dir} to retrain it")


def _check_no_leak(cfg, pairs, k: int) -> None:
    from .data import leakage
    from .data.lists import load_train

    test = pairs.subset_folds([k])
    report = leakage.check(load_train(cfg.train), test)
    if not report.clean:
        raise FacerecError(f"View 2 fold {k}: the training people and the test pairs leak:\n{report.describe()}")


def summarize(results: list[dict], out: Path) -> dict:
    from . import metrics, plots

    acc = np.array([r["accuracy"] for r in results])
    scores = np.concatenate([r["scores"] for r in results])
    labels = np.concatenate([r["labels"] for r in results]).astype(int)
    pooled = metrics.compute_all(scores, labels)
    sem = float(acc.std(ddof=1) / math.sqrt(len(acc))) if len(acc) > 1 else float("nan")
    plots.plot_roc_det({"LFW View 2 (pooled test folds)": (scores, labels)}, out / "roc_det.png")
    summary = {"folds": [r["fold"] for r in results], "accuracy_mean": float(acc.mean()), "accuracy_sem": sem,
               "per_fold": [{k: r[k] for k in ("fold", "accuracy", "threshold", "run_dir")} for r in results],
               "pooled": metrics.jsonable(pooled), "plot": str(out / "roc_det.png")}
    write_text(out / "benchmark.json", json.dumps(summary, indent=2))
    rows = "\n".join(f"| {r['fold']} | {r['accuracy']:.2f} | {r['threshold']:.4f} |" for r in results)
    spread = f"{sem:.2f}" if len(acc) > 1 else "n/a (1 fold)"
    write_text(out / "benchmark.md", f"# LFW View 2 ({len(results)} fold(s))\n\n"
               f"Accuracy: **{acc.mean():.2f}% +- {spread}** (mean +- standard error over folds)  \n"
               f"Pooled test folds: EER {pooled['eer']:.2f}%, AUC {pooled['auc']:.4f}, TAR@FAR=1e-2 "
               f"{pooled['tar_far_1e-2']:.1f}%, TAR@FAR=1e-3 {pooled['tar_far_1e-3']:.1f}%\n\n"
               f"| fold | accuracy (%) | threshold (from the other folds) |\n|---:|---:|---:|\n{rows}\n\n"
               "![ROC/DET](roc_det.png)\n")
    return summary
