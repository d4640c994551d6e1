"""Fitting the LDA and PLDA back-ends (see backend.py for the model and its scores): centring,
PCA, within/between-class statistics, LDA's projection and two-covariance PLDA by EM."""

from __future__ import annotations

import numpy as np

from facerec.errors import DataError, FacerecError
from facerec.evaluation.backend import _TINY, LDA, PLDA, _as_array, _l2, _simdiag


def _prepare(embeddings, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float64, compact labels, mask of images whose identity has 2+ images)."""
    x = _as_array(embeddings, "embeddings", 2)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise FacerecError(f"labels: expected one per embedding ({x.shape[0]}), got shape {labels.shape}")
    _, lab, counts = np.unique(labels, return_inverse=True, return_counts=True)
    multi = counts[lab] >= 2
    n_multi = int(np.count_nonzero(counts >= 2))
    if n_multi < 2:
        raise DataError(f"a back-end needs at least 2 identities with 2+ images each, got {n_multi} "
                        f"({len(counts)} identities, {x.shape[0]} images)")
    return x, lab, multi


def _pca(xc: np.ndarray, d_pca: int | None, multi: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (D, d) of centred data and their variances, descending. d is d_pca, else
    `_default_dim`; never more than the within-class scatter's rank nor than the directions with
    non-negligible variance."""
    if d_pca is not None and d_pca < 1:
        raise FacerecError(f"d_pca must be >= 1, got {d_pca}")
    cov = xc.T @ xc / max(len(xc) - 1, 1)
    ev, U = np.linalg.eigh((cov + cov.T) / 2)
    ev, U = ev[::-1], U[:, ::-1]
    keep = int(np.count_nonzero(ev > _TINY * max(ev[0], 0.0)))
    d = min(keep, int(multi.sum()) - n_classes, d_pca or _default_dim(multi, n_classes))
    return U[:, :d], ev[:d]


def _default_dim(multi: np.ndarray, n_classes: int) -> int:
    """The most dimensions the training statistics support: the within-class scatter has rank
    images - identities, the between-class one identities - 1 (among identities with 2+ images).
    More dimensions than identities overfit: on 20 ORL identities, PLDA in all 128 dimensions of a
    random-init network loses 9 points of EER to cosine, and matches it at 19."""
    return max(1, min(int(multi.sum()) - n_classes, n_classes - 1))


def _sums(lab: np.ndarray, n_classes: int, y: np.ndarray) -> np.ndarray:
    """(C, d) per-class sums of the rows of y (a sparse one-hot product: np.add.at is slow)."""
    from scipy import sparse

    onehot = sparse.csr_matrix((np.ones(len(lab)), (lab, np.arange(len(lab)))), shape=(n_classes, len(lab)))
    return np.asarray(onehot @ y)


def _class_stats(y: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class means (C, d), counts (C,), within-class covariance: the pooled scatter about the class
    means over the number of images). `lab` indexes 0..C-1, every class present."""
    _, lab = np.unique(lab, return_inverse=True)
    counts = np.bincount(lab).astype(np.float64)
    means = _sums(lab, len(counts), y) / counts[:, None]
    r = y - means[lab]
    return means, counts, r.T @ r / len(y)


def fit_lda(x: np.ndarray, lab: np.ndarray, multi: np.ndarray, *, d_pca: int | None = None,
            d_lda: int | None = None) -> LDA:
    mean = x.mean(0)
    n_classes = len(np.unique(lab[multi]))
    P, _ = _pca(x - mean, d_pca, multi, n_classes)
    y = (x[multi] - mean) @ P
    means, _, sw = _class_stats(y, lab[multi])
    s, U = np.linalg.eigh((sw + sw.T) / 2)
    ok = s > _TINY * s[-1]
    wh = U[:, ok] / np.sqrt(s[ok])  # WCCN: whitens the within-class covariance
    mc = means - means.mean(0)
    sb = wh.T @ (mc.T @ mc / len(mc)) @ wh  # between-class covariance (each identity once), whitened
    ev, R = np.linalg.eigh((sb + sb.T) / 2)
    k = min(d_lda or n_classes - 1, n_classes - 1, len(ev))
    if k < 1:
        raise FacerecError(f"d_lda must be >= 1, got {d_lda}")
    proj = P @ wh @ R[:, ::-1][:, :k]
    return LDA(mean, proj, info=_info(x, lab, multi, k))


def fit_plda(x: np.ndarray, lab: np.ndarray, multi: np.ndarray, *, d_pca: int | None = None, whiten: bool = True,
             length_norm: bool = True, iters: int = 10, reg: float = 1e-6) -> PLDA:
    pre_mean = x.mean(0)
    n_classes = len(np.unique(lab[multi]))
    P, ev = _pca(x - pre_mean, d_pca, multi, n_classes)
    pre_proj = P / np.sqrt(ev) if whiten else P
    z = (x[multi] - pre_mean) @ pre_proj
    if length_norm:
        z = _l2(z)
    mean = z.mean(0)
    B, W = plda_em(z - mean, lab[multi], iters=iters, reg=reg)
    return PLDA(pre_mean, pre_proj, mean, B, W, length_norm, info=_info(x, lab, multi, W.shape[0], iters=iters))


def plda_em(z: np.ndarray, lab: np.ndarray, iters: int = 10, reg: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(B, W) of the two-covariance model for centred data z (N, d) with identity labels (each 2+ images):
    the moment estimate (B = covariance of the class means, W = pooled within-class covariance), then
    `iters` EM steps (Sizov et al. 2014), each in the basis where W = I and B is diagonal. `reg` times
    W's mean variance is added to W's diagonal after each step, so it stays positive definite."""
    if iters < 0 or reg < 0:
        raise FacerecError(f"plda: iters and reg must be >= 0, got {iters} and {reg}")
    means, counts, W = _class_stats(z, lab)
    B = means.T @ means / len(means)
    _, lab = np.unique(lab, return_inverse=True)
    n, eye = len(z), np.eye(z.shape[1])
    W = W + reg * np.trace(W) / len(W) * eye
    for _ in range(iters):
        V, psi = _simdiag(W, B)
        Vinv = V.T @ W  # V.T @ W @ V = I, so this is V's inverse
        u = z @ V
        f = _sums(lab, len(counts), u)  # per-identity sums
        post_var = psi / (1 + counts[:, None] * psi)  # posterior covariance of y (diagonal here)
        g = post_var * f  # posterior mean of y
        Bu = (g.T @ g + np.diag(post_var.sum(0))) / len(counts)
        Wu = (u.T @ u - f.T @ g - g.T @ f + (g * counts[:, None]).T @ g + np.diag(counts @ post_var)) / n
        B, W = Vinv.T @ Bu @ Vinv, Vinv.T @ Wu @ Vinv
        B, W = (B + B.T) / 2, (W + W.T) / 2 + reg * np.trace(W) / len(W) * eye
    return B, W


def _info(x, lab, multi, dim, **extra) -> dict:
    return {"images": len(x), "identities": len(np.unique(lab)),
            "identities_2plus": len(np.unique(lab[multi])), "input_dim": int(x.shape[1]), "dim": int(dim), **extra}
