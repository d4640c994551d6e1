"""Verification metrics from (scores, labels[, folds]); a pair is accepted when score >= threshold.

EER is face_trainer's definition, so course numbers compare:
    fpr, tpr, thr = sklearn.metrics.roc_curve(labels, scores, pos_label=1); fnr = 1 - tpr
    idx = nanargmin(|fnr - fpr|); EER = max(fpr[idx], fnr[idx]) * 100; threshold = thr[idx]
The ROC is built here with one sort and cumulative sums and equals roc_curve point for point,
including its default drop_intermediate=True. That default matters: dropping the inner points
of a straight run (a run of tied scores, or several same-label pairs in a row) can move the
|fnr - fpr| minimum, so the EER of the full curve may differ from face_trainer's (the tests
show a 5-pair case where it does). AUC is the trapezoid area of that same curve
(= roc_auc_score).

TAR@FAR=x is the largest TPR of any threshold (a distinct score, or +inf for "accept
nothing") whose FPR <= x. It is read from every operating point, not from the thinned curve,
whose dropped inner points of a tied run can be the best one under x.
The threshold kept for FAR=x (`tar_far_x_threshold`, the one `facerec verify --far` uses) is
that point's, except where that point is "accept nothing" (x times the different pairs is under
one false accept and the highest-scoring pair is a different one, or the top scores tie): then it
is the highest different-pair score, never +inf, so a decision at it accepts that pair (and an
image compared with itself).

Best accuracy maximises (TP + TN) / n over the same thresholds; on a tie the strictest
(highest) threshold wins. The LFW protocol's k-fold accuracy picks, for each fold, the best
threshold of the other folds this way (from their own distinct scores) and reports the held-out
fold's accuracy; mean and standard error std(ddof=1) / sqrt(k) over the folds.

Units and names follow `metric_keys`: every rate (EER, TAR, accuracy) is in percent; AUC is in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facerec.errors import FacerecError
from facerec.evaluation.metric_keys import FARS, tar_key


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise FacerecError(f"scores and labels must be 1-D of equal length, got {scores.shape} and {labels.shape}")
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if len(bad):
        raise FacerecError(f"labels must be 0 or 1; {len(bad)} are not (pairs {bad[:5].tolist()}"
                           f"{', ...' if len(bad) > 5 else ''}); unknown test labels cannot be scored")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise FacerecError(f"{len(bad)} score(s) are NaN or infinite (pairs {bad[:5].tolist()}"
                           f"{', ...' if len(bad) > 5 else ''})")
    n_pos = int(np.count_nonzero(labels))
    if n_pos in (0, len(labels)):
        raise FacerecError("EER needs both same (1) and different (0) pairs; only one class is present"
                           if len(labels) else "no pairs to score")
    return scores, labels.astype(np.int8)


@dataclass
class _Points:
    """Every operating point: counts for `score >= thr[i]`, index 0 being thr = +inf (accept nothing)."""

    tp: np.ndarray
    fp: np.ndarray
    thr: np.ndarray
    n_pos: int
    n_neg: int
    order: np.ndarray  # descending score order
    ends: np.ndarray  # last sorted position of each run of equal scores


def _points(scores: np.ndarray, labels: np.ndarray) -> _Points:
    # Order within tied scores is irrelevant: only counts at the end of each tie run are used.
    order = np.argsort(scores)[::-1]
    s = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(labels[order], dtype=np.int64)[ends]
    fp = ends + 1 - tp
    n_pos = int(tp[-1])
    return _Points(np.r_[0, tp], np.r_[0, fp], np.r_[np.inf, s[ends]], n_pos, len(s) - n_pos, order, ends)


def _roc(p: _Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, thr = p.tp[1:], p.fp[1:], p.thr[1:]
    if len(fp) > 2:  # sklearn's drop_intermediate, on the points before (0, 0) is prepended
        keep = np.flatnonzero(np.r_[True, (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0), True])
        tp, fp, thr = tp[keep], fp[keep], thr[keep]
    return np.r_[0, fp] / p.n_neg, np.r_[0, tp] / p.n_pos, np.r_[np.inf, thr]


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), identical to sklearn.metrics.roc_curve(labels, scores)."""
    return _roc(_points(*_check(scores, labels)))


def eer_from_roc(fpr, tpr, thr) -> tuple[float, float]:
    """(EER in percent, threshold) of a roc() curve."""
    fnr = 1 - tpr
    idx = np.nanargmin(np.abs(fnr - fpr))
    return float(max(fpr[idx], fnr[idx]) * 100), float(thr[idx])


def eer(scores, labels) -> tuple[float, float]:
    """(EER in percent, its threshold), face_trainer's definition."""
    return eer_from_roc(*roc(scores, labels))


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def _far_index(p: _Points, far: float) -> int:
    # fp only grows along the points, so the last one within budget has the largest tp.
    # The small slack keeps e.g. 0.1 * 30 negatives from excluding exactly 3 false accepts.
    return int(np.searchsorted(p.fp, far * p.n_neg + 1e-9, side="right")) - 1


def _tar_at_far(p: _Points, far: float) -> float:
    return float(p.tp[_far_index(p, far)] / p.n_pos * 100)


def _far_threshold(p: _Points, far: float) -> tuple[float, str | None]:
    i = _far_index(p, far)
    budget = far * p.n_neg
    if i > 0 and budget >= 1 - 1e-9:
        return float(p.thr[i]), None
    smallest = f"the smallest FAR these pairs measure is 1/{p.n_neg} = {1 / p.n_neg:.2g}"
    why = (f"FAR={far:g} is {budget:.2g} false accept(s) of {p.n_neg} different validation pairs" if budget < 1 - 1e-9
           else f"FAR={far:g} allows {budget:.2g} false accept(s) of {p.n_neg} different validation pairs, but more "
                "of them tie at the top score")
    if i > 0:
        return float(p.thr[i]), (f"{why}: the threshold {p.thr[i]:.4f} is the lowest score above every one of them "
                                 f"(FAR 0 on them); {smallest}")
    # Only "accept nothing" (+inf) keeps within the budget. Never +inf (an image would not match
    # itself): the highest different-pair score, which accepts that pair.
    j = int(np.argmax(p.fp > 0))
    t, fp = float(p.thr[j]), int(p.fp[j])
    return t, (f"{why}, and no same pair scores above them: the threshold is the highest different-pair score, "
               f"{t:.4f}, which accepts {fp} of them (FAR {fp / p.n_neg:.2g}); {smallest}")


def _threshold_at_far(p: _Points, far: float) -> float:
    """The decision threshold for `far` (see `far_threshold`)."""
    return _far_threshold(p, far)[0]


def far_threshold(scores, labels, far: float) -> tuple[float, str | None]:
    """(threshold, note): the lowest cosine threshold (score >= threshold accepts) with FPR <= far on
    these pairs, never +inf: where only "accept nothing" keeps FPR <= far (no same pair scores above
    every different pair that far x n_neg < 1 allows, or the top scores tie), the highest different-pair
    score. The note (else None) says when the pairs cannot measure `far` (far x n_neg < 1 false accept,
    e.g. FAR=1e-3 on 500 different pairs) and names the smallest FAR they measure (1 / n_neg)."""
    return _far_threshold(_points(*_check(scores, labels)), float(far))


def threshold_at_far(scores, labels, far: float) -> float:
    """The threshold of `far_threshold`, without its note."""
    return far_threshold(scores, labels, far)[0]


def _correct(p: _Points) -> np.ndarray:
    return p.tp + (p.n_neg - p.fp)


def accuracy_at(scores, labels, threshold: float) -> float:
    """Accuracy in percent when a pair is accepted at a score >= threshold."""
    scores, labels = _check(scores, labels)
    return float(np.mean((scores >= threshold) == (labels == 1)) * 100)


def best_accuracy(scores, labels) -> tuple[float, float]:
    """(best accuracy in percent, its threshold)."""
    p = _points(*_check(scores, labels))
    correct = _correct(p)
    i = int(np.argmax(correct))
    return float(correct[i] / (p.n_pos + p.n_neg) * 100), float(p.thr[i])


def _fold_accuracy(p: _Points, labels: np.ndarray, folds) -> np.ndarray:
    folds = np.asarray(folds)
    if folds.shape != labels.shape:
        raise FacerecError(f"folds must have one entry per pair, got {folds.shape} for {labels.shape[0]} pairs")
    _, fold_sorted = np.unique(folds[p.order], return_inverse=True)
    step = np.where(labels[p.order] == 1, 1, -1).astype(np.int32)  # a pair's effect on `correct` once accepted
    correct_all = _correct(p)
    out = []
    for f in range(int(fold_sorted.max()) + 1):
        mine = fold_sorted == f
        n_neg = int(np.count_nonzero(step[mine] < 0))
        # Correct decisions inside this fold at every threshold of the whole set. Thresholds at
        # scores that occur only in this fold give the other folds the same count as the
        # previous (higher) threshold, so argmax (first maximum) never picks one: the choice
        # equals a search over the other folds' own distinct scores.
        correct_f = np.r_[0, np.cumsum(np.where(mine, step, 0), dtype=np.int64)[p.ends]] + n_neg
        best = int(np.argmax(correct_all - correct_f))
        out.append(correct_f[best] / np.count_nonzero(mine))
    return np.array(out, dtype=np.float64)


def fold_accuracy(scores, labels, folds) -> np.ndarray:
    """Held-out accuracy per fold in percent (LFW protocol), in the sorted order of the fold ids."""
    scores, labels = _check(scores, labels)
    return _fold_accuracy(_points(scores, labels), labels, folds) * 100


def compute_all(scores, labels, folds=None) -> dict:
    """Every metric in one pass over one sort. Fold keys appear when `folds` has 2+ distinct ids."""
    scores, labels = _check(scores, labels)
    p = _points(scores, labels)
    fpr, tpr, thr = _roc(p)
    e, e_thr = eer_from_roc(fpr, tpr, thr)
    correct = _correct(p)
    best = int(np.argmax(correct))
    out = {
        "n_pairs": len(scores),
        "n_positive": p.n_pos,
        "n_negative": p.n_neg,
        "eer": e,
        "eer_threshold": e_thr,
        "auc": auc(fpr, tpr),
        **{tar_key(f): _tar_at_far(p, float(f)) for f in FARS},
        **{tar_key(f) + "_threshold": _threshold_at_far(p, float(f)) for f in FARS},
        "acc": float(correct[best] / len(scores) * 100),
        "acc_threshold": float(p.thr[best]),
    }
    acc = _fold_accuracy(p, labels, folds) * 100 if folds is not None else ()
    if len(acc) > 1:
        out.update(n_folds=len(acc), fold_acc_mean=float(acc.mean()),
                   fold_acc_sem=float(acc.std(ddof=1) / math.sqrt(len(acc))))
    return out


def jsonable(m: dict) -> dict:
    """Strict JSON has no Infinity: a +inf threshold ("accept nothing") becomes null."""
    return {k: jsonable(v) if isinstance(v, dict) else (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in m.items()}


def _support(far: str, n_negative: int) -> str:
    """A FAR point needs several false accepts to be measured; below one it is a guess."""
    expected = float(far) * n_negative
    if expected < 1:
        return f"  (unreliable: FAR={far} of {n_negative} different pairs is {expected:.2g} pair)"
    if expected < 10:
        return f"  (rests on ~{expected:.0f} false accepts)"
    return ""


def format_table(m: dict) -> str:
    rows = [
        ("pairs", f"{m['n_pairs']} ({m['n_positive']} same, {m['n_negative']} different)"),
        ("EER", f"{m['eer']:.2f}%  (threshold {m['eer_threshold']:.4f})"),
        ("AUC", f"{m['auc']:.4f}"),
    ]
    rows += [(f"TAR @ FAR={f}", f"{m[tar_key(f)]:.2f}%" + _support(f, m["n_negative"])) for f in FARS]
    rows.append(("best accuracy", f"{m['acc']:.2f}%  (threshold {m['acc_threshold']:.4f})"))
    if "fold_acc_mean" in m:
        rows.append((f"{m['n_folds']}-fold accuracy", f"{m['fold_acc_mean']:.2f}% ± {m['fold_acc_sem']:.2f}% (mean ± s.e.)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
