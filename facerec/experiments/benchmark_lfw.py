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

With a learned back-end (`backend=lda|plda`, `facerec.evaluation.backend`), fold k's back-end is fit on the
embeddings of fold k's training list only (the people of the other nine folds, the list its model
trained on), embedded by the same last.pt with its preprocessing and TTA; the training images and
the 6,000 pairs' images are embedded together, each image once, and kept in the fold's folder
(fold_embeddings.py): another back-end on the same last.pt embeds nothing again. The back-end then scores all 6,000
pairs, and the threshold rule is unchanged: chosen on the other nine folds' 5,400 pairs, scored by
the same fold-k model and back-end, applied to fold k's 600. The test fold's people reach neither the
network, nor the back-end, nor the threshold. As with the network, the back-end has seen the nine
folds' people, so the threshold is tuned on scores of seen identities (a PLDA log-likelihood ratio
runs higher for them): a threshold shifted this way can cost test-fold accuracy, never inflate it,
since nothing of the test fold chose it. Back-end scores are on their own scale (a cosine for lda, a log-likelihood ratio for plda), one fit per fold. A fold scored
with another back-end is rescored from its saved last.pt (no training); fold.json names the back-end.

Mirror test-time augmentation (`tta`: each image's embedding adds its horizontal mirror's) is a
scoring choice too: it defaults to the recipe's `tta` key, can be switched per benchmark run, and a
fold scored the other way is rescored from its last.pt, like a back-end change. So are test crops
(`test_crops`: 1, the centre crop; 5, also the four corners, their embeddings summed).

The seen-people threshold runs high (a fold's model scores its training people's genuine pairs
higher than a stranger's), so a `threshold_shift`, measured beforehand on View 1
(scripts/probe_threshold_shift.py: the best threshold on pairsDevTrain's seen people minus the best
on pairsDevTest's unseen ones), can be subtracted from it. It is one constant fixed before any View 2
fold is scored: nothing of a test fold chooses it. A scoring choice as well; fold.json records it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np

from facerec.config import DATA_KEYS, check_same_recipe
from facerec.errors import FacerecError
from facerec.util.fileio import write_text

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
    from facerec.data import lfw
    from facerec.data import root as dataroot

    d = dataroot.lists_dir("lfw")
    if not (d / "view2_pairs.csv").is_file() or not (d / "view2_train_fold10.txt").is_file():
        lfw.write_lists(dataroot.resolve(cfg.data_root, need="lfw"), d)
    return d / "view2_pairs.csv", d


def fold_scores(run_dir: Path, pairs, progress: bool, backend: str = "none", train=None,
                tta: bool | None = None, test_crops: int | None = None) -> np.ndarray:
    """All pairs' scores by the fold's last.pt: the cosine (backend="none"), else the back-end fit on
    `train` (the fold's TrainList: its training people only) and scoring the pairs. `tta`: every
    image's embedding adds its mirror's; `test_crops`: of how many crops (None: as the run used it)."""
    return _fold_scores(run_dir, pairs, progress, backend, train, tta, test_crops)[0]


def _fold_scores(run_dir: Path, pairs, progress: bool, backend: str = "none", train=None,
                 tta: bool | None = None, test_crops: int | None = None) -> tuple[np.ndarray, dict]:
    """(scores of all pairs, the back-end's fit info: {} for the cosine)."""
    import os

    from facerec.evaluation import backend as backends
    from facerec.experiments.fold_embeddings import cache_path, embed_cached
    from facerec.inference.facemodel import load

    if backend not in backends.KINDS:
        raise FacerecError(f"unknown back-end {backend!r}; choose from {', '.join(backends.KINDS)}")
    m = load(run_dir / "last.pt", device="auto")
    tta = m.tta if tta is None else bool(tta)
    if test_crops is not None:
        m.test_crops = test_crops
    cache = cache_path(run_dir.parent, tta, m.test_crops)

    def embed(paths: list[str]) -> np.ndarray:
        return embed_cached(m, paths, run_dir / "last.pt", cache, tta, progress)

    uniq, i1, i2 = pairs.unique_paths()
    pair_paths = [os.path.normpath(os.path.join(str(pairs.root), p)) for p in uniq]
    if backend == "none":
        e = embed(pair_paths)
        return (e[i1] * e[i2]).sum(1).astype(np.float64), {}
    if train is None:
        raise FacerecError(f"back-end {backend}: needs the fold's training list to fit on")
    # The training images and the pairs' images, each embedded once (the nine folds' pairs reuse them).
    index: dict[str, int] = {}
    for p in pair_paths + [os.path.normpath(p) for p in train.abspaths()]:
        index.setdefault(p, len(index))
    e = embed(list(index))
    fit_rows = np.array([index[os.path.normpath(p)] for p in train.abspaths()], dtype=np.int64)
    fitted = backends.fit_backend(e[fit_rows], train.labels, backend)
    return fitted.score(e[i1], e[i2]), {k: fitted.info[k] for k in ("images", "identities", "dim")}


def fold_config(k: int, base_cfg, train_dir: Path, out: Path):
    """Fold k's training config (the other nine folds' people), checked against what its folder holds."""
    fold_dir = out / f"fold{k:02d}"
    cfg = copy.deepcopy(base_cfg)
    cfg.train, cfg.root, cfg.val, cfg.test_list = str(train_dir / f"view2_train_fold{k:02d}.txt"), None, None, None
    cfg.run_dir, cfg.resume = str(fold_dir / "run"), None
    # `--set epochs=20` keeps the default results folder: an old fold must not stand in for a new one.
    check_same_recipe(fold_dir / "run" / "config.yaml", cfg.to_dict(), DATA_KEYS,
                      f"use --out for a new results folder, or delete {fold_dir} to retrain this fold")
    return cfg


def fold_done(k: int, out: Path, backend: str | None = None, tta: bool | None = None,
              threshold_shift: float | None = None, test_crops: int | None = None) -> dict | None:
    """Fold k's finished record; with `backend` (and `tta`, `threshold_shift`, `test_crops`), only if
    it was scored that way. A record without them predates the choice: it was scored with the cosine,
    with TTA as its run's config.yaml says, with an unshifted threshold and the centre crop alone."""
    done = out / f"fold{k:02d}" / "fold.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    if "tta" not in result:
        import yaml

        saved = out / f"fold{k:02d}" / "run" / "config.yaml"
        result["tta"] = bool((yaml.safe_load(saved.read_text()) or {}).get("tta")) if saved.is_file() else False
    result.setdefault("threshold_shift", 0.0)
    result.setdefault("test_crops", 1)
    return result if _scored_as(result, backend, tta, threshold_shift, test_crops) else None


def _scored_as(result: dict, backend: str | None, tta: bool | None, threshold_shift: float | None = None,
               test_crops: int | None = None) -> bool:
    return ((backend is None or result.get("backend", "none") == backend) and (tta is None or result["tta"] == tta)
            and (threshold_shift is None or result.get("threshold_shift", 0.0) == float(threshold_shift))
            and (test_crops is None or result.get("test_crops", 1) == test_crops))


def run_fold(k: int, base_cfg, pairs, train_dir: Path, out: Path, progress: bool, backend: str = "none",
             tta: bool | None = None, threshold_shift: float = 0.0, test_crops: int | None = None) -> dict:
    """Fold k trained (or reused) and scored with `backend`; `tta` and `test_crops` (None: the
    recipe's own keys) choose the views each image's embedding sums at scoring time only, so they
    never retrain a fold; the threshold chosen on the other folds' pairs is lowered by `threshold_shift`."""
    from facerec.data.lists import load_train
    from facerec.evaluation import metrics
    from facerec.trainer import Trainer
    from facerec.util.rundir import status

    fold_dir = out / f"fold{k:02d}"
    done = fold_dir / "fold.json"
    cfg = fold_config(k, base_cfg, train_dir, out)
    tta = bool(cfg.tta) if tta is None else bool(tta)
    test_crops = cfg.test_crops if test_crops is None else int(test_crops)
    earlier = fold_done(k, out)
    threshold_shift = _finite_shift(threshold_shift)
    if earlier is not None and _scored_as(earlier, backend, tta, threshold_shift, test_crops):
        log.info("fold %d: finished earlier (%s)", k, done)
        return earlier
    if earlier is not None:
        log.info("fold %d: scored with back-end %s, TTA %s, %d test crop(s), threshold shift %g earlier; rescoring "
                 "with %s, TTA %s, %d test crop(s), shift %g (no training)", k, earlier.get("backend", "none"),
                 "on" if earlier.get("tta") else "off", earlier["test_crops"], earlier.get("threshold_shift", 0.0),
                 backend, "on" if tta else "off", test_crops, threshold_shift)
    run_status = status(fold_dir / "run")
    if run_status == "resume":
        cfg.resume = str(fold_dir / "run")
    if run_status != "done":
        _check_no_leak(cfg, pairs, k)
        Trainer(cfg, progress=progress).fit()
    train = load_train(cfg.train) if backend != "none" else None
    s, fit_info = _fold_scores(fold_dir / "run", pairs, progress, backend, train, tta, test_crops)
    test, rest = pairs.folds == k, pairs.folds != k
    _, chosen = metrics.best_accuracy(s[rest], pairs.labels[rest])
    thr = chosen - threshold_shift
    acc = metrics.accuracy_at(s[test], pairs.labels[test], thr)
    result = {"fold": k, "accuracy": acc, "threshold": thr, "test_pairs": int(test.sum()),
              "run_dir": str(fold_dir / "run"), "backend": backend, "tta": tta,
              "test_crops": test_crops, "threshold_chosen": chosen, "threshold_shift": threshold_shift,
              **({"backend_fit": {"train": str(cfg.train), **fit_info}} if fit_info else {}),
              "scores": s[test].tolist(), "labels": pairs.labels[test].tolist()}
    write_text(done, json.dumps(result))
    log.info("fold %d: accuracy %.2f%% at threshold %.4f (back-end %s, TTA %s, %d test crop(s); chosen on the "
             "other folds' pairs%s)", k, acc, thr, backend, "on" if tta else "off", test_crops,
             f", minus {threshold_shift:g}" if threshold_shift else "")
    return result


def _finite_shift(value) -> float:
    shift = float(value)
    if not math.isfinite(shift):
        raise FacerecError(f"threshold shift: expected a finite number, got {value!r}")
    return shift


def _check_no_leak(cfg, pairs, k: int) -> None:
    from facerec.data import leakage
    from facerec.data.lists import load_train

    test = pairs.subset_folds([k])
    report = leakage.check(load_train(cfg.train), test)
    if not report.clean:
        raise FacerecError(f"View 2 fold {k}: the training people and the test pairs leak:\n{report.describe()}")


def summarize(results: list[dict], out: Path) -> dict:
    from facerec.evaluation import metrics, plots

    acc = np.array([r["accuracy"] for r in results])
    scores = np.concatenate([r["scores"] for r in results])
    labels = np.concatenate([r["labels"] for r in results]).astype(int)
    pooled = metrics.compute_all(scores, labels)
    sem = float(acc.std(ddof=1) / math.sqrt(len(acc))) if len(acc) > 1 else float("nan")
    plots.plot_roc_det({"LFW View 2 (pooled test folds)": (scores, labels)}, out / "roc_det.png")
    kinds = sorted({r.get("backend", "none") for r in results})
    backend = kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)
    ttas = {bool(r.get("tta", False)) for r in results}
    tta = ttas.pop() if len(ttas) == 1 else "mixed"
    crops = {int(r.get("test_crops", 1)) for r in results}
    crop = crops.pop() if len(crops) == 1 else "mixed"
    shifts = {float(r.get("threshold_shift", 0.0)) for r in results}
    shift = shifts.pop() if len(shifts) == 1 else "mixed"
    summary = {"folds": [r["fold"] for r in results], "backend": backend, "tta": tta, "test_crops": crop,
               "threshold_shift": shift, "accuracy_mean": float(acc.mean()),
               "accuracy_sem": sem,
               "per_fold": [{**{k: r[k] for k in ("fold", "accuracy", "threshold", "run_dir")},
                             "backend": r.get("backend", "none"), "tta": bool(r.get("tta", False)),
                             "test_crops": int(r.get("test_crops", 1)),
                             "threshold_shift": float(r.get("threshold_shift", 0.0))}
                            for r in results],
               "pooled": metrics.jsonable(pooled), "plot": str(out / "roc_det.png")}
    write_text(out / "benchmark.json", json.dumps(summary, indent=2))
    rows = "\n".join(f"| {r['fold']} | {r['accuracy']:.2f} | {r['threshold']:.4f} |" for r in results)
    spread = f"{sem:.2f}" if len(acc) > 1 else "n/a (1 fold)"
    scale = {"none": "cosine", "lda": "cosine after LDA", "plda": "PLDA log-likelihood ratio"}.get(backend, backend)
    mirror = {True: "on (each image's embedding adds its mirror's)", False: "off"}.get(tta, tta)
    crop_text = {1: "1 (the centre)", 5: "5 (the centre and the four corners, embeddings summed)"}.get(crop, crop)
    rule = ("the best-accuracy threshold on the other nine folds' pairs"
            + ("" if shift == 0.0 else f", minus {shift:g} (--threshold-shift)" if shift != "mixed"
               else ", minus a shift that differs between folds"))
    write_text(out / "benchmark.md", f"# LFW View 2 ({len(results)} fold(s))\n\n"
               f"Back-end: **{backend}** (scores: {scale}; a learned back-end is fit per fold on that fold's "
               "training people only)  \n"
               f"Test-time augmentation: **{mirror}**; test crops: **{crop_text}**  \n"
               f"Threshold: {rule}  \n"
               f"Accuracy: **{acc.mean():.2f}% +- {spread}** (mean +- standard error over folds)  \n"
               f"Pooled test folds: EER {pooled['eer']:.2f}%, AUC {pooled['auc']:.4f}, TAR@FAR=1e-2 "
               f"{pooled['tar_far_1e-2']:.1f}%, TAR@FAR=1e-3 {pooled['tar_far_1e-3']:.1f}%\n\n"
               f"| fold | accuracy (%) | threshold (from the other folds) |\n|---:|---:|---:|\n{rows}\n\n"
               "![ROC/DET](roc_det.png)\n")
    return summary
