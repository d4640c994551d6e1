"""Verification metrics from (scores, labels[, folds]).

EER uses face_trainer's definition so course numbers compare:
    fpr, tpr, thr = sklearn.metrics.roc_curve(labels, scores, pos_label=1); fnr = 1 - tpr
    idx = nanargmin(|fnr - fpr|); EER = max(fpr[idx], fnr[idx]) * 100
The ROC here is built with one sort and cumulative sums and equals sklearn's roc_curve
(drop_intermediate=True, the default face_trainer used) point for point.
"""

from __future__ import annotations

import numpy as np

from .errors import FacerecError

FAR_TARGETS = ("0.1", "0.01", "0.001")


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise FacerecError(f"scores and labels must be 1-D of equal length, got {scores.shape} and {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        bad = np.flatnonzero(~np.isin(labels, (0, 1)))[:5]
        raise FacerecError(f"labels must be 0 or 1 (pairs {bad.tolist()} are not)")
    if np.isnan(scores).any():
        raise FacerecError(f"{int(np.isnan(scores).sum())} score(s) are NaN")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise FacerecError("EER needs both same (1) and different (0) pairs; only one class is present")
    return scores, labels.astype(np.int64)


def _descending(scores: np.ndarray, labels: np.ndarray):
    order = np.argsort(-scores, kind="stable")
    return scores[order], labels[order], order


def _counts(s: np.ndarray, y: np.ndarray):
    """Cumulative (tp, fp, threshold) at the end of each run of equal scores, s sorted descending."""
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, np.int64)
    tps = np.cumsum(y)[ends]
    return tps, 1 + ends - tps, s[ends]


def _roc_sorted(s: np.ndarray, y: np.ndarray):
    tps, fps, thresholds = _counts(s, y)
    if len(fps) > 2:  # sklearn's drop_intermediate: drop collinear points
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) identical to sklearn.metrics.roc_curve(labels, scores)."""
    s, y, _ = _descending(*_check(scores, labels))
    return _roc_sorted(s, y)


def eer(scores, labels) -> tuple[float, float]:
    fpr, tpr, thr = roc(scores, labels)
    return _eer(fpr, tpr, thr)


def _eer(fpr, tpr, thr) -> tuple[float, float]:
    fnr = 1 - tpr
    idx = np.nanargmin(np.abs(fnr - fpr))
    return float(max(fpr[idx], fnr[idx]) * 100), float(thr[idx])


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The largest TPR among ROC points whose FPR <= target (0 when none)."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _best_accuracy_sorted(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Best accuracy of `score >= t` over every candidate t (each distinct score, plus +inf)."""
    tp, fp, thr = _counts(s, y)
    n_neg = len(y) - y.sum()
    acc = np.r_[n_neg, tp + (n_neg - fp)] / len(y)
    i = int(np.argmax(acc))
    return float(acc[i]), float(np.r_[np.inf, thr][i])


def best_accuracy(scores, labels) -> tuple[float, float]:
    s, y, _ = _descending(np.asarray(scores, np.float64), np.asarray(labels, np.int64))
    return _best_accuracy_sorted(s, y)


def fold_accuracy(scores, labels, folds, _sorted=None) -> np.ndarray:
    """LFW protocol: for each fold, the threshold that maximises accuracy on the other folds
    is applied to the held-out fold. One sort serves every fold (a subset of a sorted
    sequence stays sorted)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    s, y, order = _sorted or _descending(scores, labels)
    f_sorted = np.asarray(folds)[order]
    out = []
    for f in np.unique(f_sorted):
        train = f_sorted != f
        _, t = _best_accuracy_sorted(s[train], y[train])
        test = ~train
        out.append(float(((s[test] >= t) == (y[test] == 1)).mean()))
    return np.array(out)


def compute_all(scores, labels, folds=None) -> dict:
    scores, labels = _check(scores, labels)
    ordered = _descending(scores, labels)
    fpr, tpr, thr = _roc_sorted(*ordered[:2])
    e, e_thr = _eer(fpr, tpr, thr)
    acc, acc_thr = _best_accuracy_sorted(*ordered[:2])
    out = {
        "n_pairs": int(len(scores)),
        "n_positive": int(labels.sum()),
        "n_negative": int(len(labels) - labels.sum()),
        "eer": e,
        "eer_threshold": e_thr,
        "auc": auc(fpr, tpr),
        "tar_at_far": {t: tar_at_far(fpr, tpr, float(t)) for t in FAR_TARGETS},
        "best_accuracy": acc,
        "best_threshold": acc_thr,
    }
    if folds is not None and len(np.unique(folds)) > 1:
        fa = fold_accuracy(scores, labels, folds, ordered)
        out.update(n_folds=int(len(fa)), fold_accuracy_mean=float(fa.mean()),
                   fold_accuracy_sem=float(fa.std(ddof=1) / np.sqrt(len(fa))))
    return out


def format_table(m: dict) -> str:
    rows = [
        ("pairs", f"{m['n_pairs']} ({m['n_positive']} same, {m['n_negative']} different)"),
        ("EER", f"{m['eer']:.2f}%  (threshold {m['eer_threshold']:.4f})"),
        ("AUC", f"{m['auc']:.4f}"),
    ]
    rows += [(f"TAR @ FAR={t}", f"{v * 100:.2f}%") for t, v in m["tar_at_far"].items()]
    rows.append(("best accuracy", f"{m['best_accuracy'] * 100:.2f}%  (threshold {m['best_threshold']:.4f})"))
    if "fold_accuracy_mean" in m:
        rows.append((f"{m['n_folds']}-fold accuracy",
                     f"{m['fold_accuracy_mean'] * 100:.2f}% ± {m['fold_accuracy_sem'] * 100:.2f}% (mean ± s.e.)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
