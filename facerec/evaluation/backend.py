"""Verification back-ends: a scorer for pairs of embeddings, fit on training identities' embeddings.

    b = fit_backend(train_emb, train_labels, "plda")   # or "lda", or "none" (cosine)
    s = b.score(e1, e2)                                 # (N,) scores of the row-wise pairs e1[i], e2[i]
    state = b.state_dict(); b2 = from_state(state)      # plain values and arrays; into a checkpoint as tensors

Kinds:
- `none`: cosine of the L2-normalised embeddings (what a model does without a back-end).
- `lda`: centre, PCA to `d_pca`, then the within-class covariance whitened (WCCN) and the directions
  of largest between-class variance kept (LDA, `d_lda` of them); score = cosine in that space. The
  within-class covariance of the projected training embeddings is the identity.
- `plda`: the two-covariance PLDA model (Ioffe 2006; Sizov et al. 2014): x = mu + y + e with the
  identity y ~ N(0, B) and the image noise e ~ N(0, W), fit by EM from the closed-form (moment)
  estimate, on embeddings centred, PCA-whitened to `d_pca` and length-normalised (Garcia-Romero &
  Espy-Wilson 2011). Score = log-likelihood ratio of "same identity" vs "different identities":
  log N([a; b]; [mu; mu], [[B+W, B], [B, B+W]]) - log N(a; mu, B+W) - log N(b; mu, B+W).

Every image informs the centring mean and the PCA; within-class (and between-class) statistics come
only from identities with two or more images, each identity's class mean counting once for B/Sb.
Scores of a back-end are on their own scale (a cosine for none/lda, a log-likelihood ratio for
plda): a threshold calibrated on cosine scores does not carry over.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import DataError, FacerecError

KINDS = ("none", "lda", "plda")
STATE_VERSION = 1
_TINY = 1e-10  # eigenvalues below this fraction of the largest are numerically zero


def _as_array(x, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)
    if a.ndim != ndim:
        raise FacerecError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise FacerecError(f"{name}: holds NaN or infinite values")
    return a


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape != b.shape:
        raise FacerecError(f"score takes row-wise pairs: got {a.shape} and {b.shape}")
    return a, b


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Backend:
    """Cosine scoring; the base of the fitted back-ends."""

    kind = "none"

    def __init__(self, info: dict | None = None):
        self.info = dict(info or {})

    def __repr__(self) -> str:
        fit = ", ".join(f"{k}={v}" for k, v in self.info.items() if k in ("images", "identities", "dim"))
        return f"{type(self).__name__}({self.kind}{', ' + fit if fit else ''})"

    def transform(self, x) -> np.ndarray:
        """The embeddings in the space the score works in (here: L2-normalised)."""
        return _l2(np.atleast_2d(np.asarray(x, dtype=np.float64)))

    def score(self, a, b) -> np.ndarray:
        """(N,) float64 scores of the row-wise pairs (a[i], b[i]); higher means more likely the same person."""
        a, b = _pair(a, b)
        return (self.transform(a) * self.transform(b)).sum(1)

    def _arrays(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """Plain values (str, int, float, bool, dict) and float64 arrays: `to_checkpoint` makes the
        arrays tensors for a `torch.load(weights_only=True)` checkpoint; `from_state` reads either."""
        return {"kind": self.kind, "version": STATE_VERSION, "info": dict(self.info), **self._arrays()}

    @classmethod
    def from_state(cls, state: dict) -> Backend:
        return from_state(state)


class LDA(Backend):
    """Cosine after an affine map: x -> (x - mean) @ proj, then L2 normalisation."""

    kind = "lda"

    def __init__(self, mean, proj, info: dict | None = None):
        super().__init__(info)
        self.mean = _as_array(mean, "lda mean", 1)
        self.proj = _as_array(proj, "lda proj", 2)
        if self.proj.shape[0] != self.mean.shape[0]:
            raise FacerecError(f"lda: proj has {self.proj.shape[0]} rows for a {self.mean.shape[0]}-d mean")

    def project(self, x) -> np.ndarray:
        """The linear part, before length normalisation: training data here has identity within-class covariance."""
        return (np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.mean) @ self.proj

    def transform(self, x) -> np.ndarray:
        return _l2(self.project(x))

    def _arrays(self) -> dict:
        return {"mean": self.mean, "proj": self.proj}


class PLDA(Backend):
    """Two-covariance PLDA on preprocessed embeddings z = norm((x - pre_mean) @ pre_proj)."""

    kind = "plda"

    def __init__(self, pre_mean, pre_proj, mean, between, within, length_norm: bool = True,
                 info: dict | None = None):
        super().__init__(info)
        self.pre_mean = _as_array(pre_mean, "plda pre_mean", 1)
        self.pre_proj = _as_array(pre_proj, "plda pre_proj", 2)
        self.mean = _as_array(mean, "plda mean", 1)
        self.between = _as_array(between, "plda between", 2)
        self.within = _as_array(within, "plda within", 2)
        self.length_norm = bool(length_norm)
        d = self.pre_proj.shape[1]
        if (self.pre_proj.shape[0] != self.pre_mean.shape[0] or self.mean.shape != (d,)
                or self.between.shape != (d, d) or self.within.shape != (d, d)):
            raise FacerecError(f"plda: inconsistent shapes: pre_mean {self.pre_mean.shape}, pre_proj "
                               f"{self.pre_proj.shape}, mean {self.mean.shape}, between {self.between.shape}, "
                               f"within {self.within.shape}")
        self._basis, self._psi = _simdiag(self.within, self.between)
        psi = self._psi
        # Per dimension of the basis where W = I and B = diag(psi), the LLR is
        # c_sq * (a^2 + b^2) + c_ab * a * b + c0 (the 2x2 Gaussian of a same-person pair vs two singles).
        self._c_sq = 0.5 / (1 + psi) - 0.5 * (1 + psi) / (1 + 2 * psi)
        self._c_ab = psi / (1 + 2 * psi)
        self._c0 = float(np.sum(np.log1p(psi) - 0.5 * np.log1p(2 * psi)))

    def transform(self, x) -> np.ndarray:
        """The model's space: centred, projected (PCA, whitened) and, if fit so, length-normalised."""
        z = (np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.pre_mean) @ self.pre_proj
        return _l2(z) if self.length_norm else z

    def score(self, a, b) -> np.ndarray:
        a, b = _pair(a, b)
        ua = (self.transform(a) - self.mean) @ self._basis
        ub = (self.transform(b) - self.mean) @ self._basis
        return (ua * ua + ub * ub) @ self._c_sq + (ua * ub) @ self._c_ab + self._c0

    def _arrays(self) -> dict:
        return {"pre_mean": self.pre_mean, "pre_proj": self.pre_proj, "mean": self.mean, "between": self.between,
                "within": self.within, "length_norm": self.length_norm}


def _simdiag(W: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V, psi with V.T @ W @ V = I and V.T @ B @ V = diag(psi) (psi >= 0, descending). W must be positive definite."""
    from scipy import linalg

    W, B = (W + W.T) / 2, (B + B.T) / 2
    s, U = np.linalg.eigh(W)
    if s[0] <= _TINY * max(s[-1], 0.0) or s[-1] <= 0:
        raise FacerecError("plda: the within-class covariance is singular; lower d_pca")
    wh = U / np.sqrt(s)
    psi, R = linalg.eigh(wh.T @ B @ wh)
    psi, R = np.clip(psi[::-1], 0, None), R[:, ::-1]
    return wh @ R, psi


# --- fitting -------------------------------------------------------------------------------------------

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


_OPTIONS = {"none": set(), "lda": {"d_pca", "d_lda"}, "plda": {"d_pca", "whiten", "length_norm", "iters", "reg"}}


def check_options(kind: str, opts: dict) -> dict:
    """The options given (None means the default), checked against the kind's."""
    if kind not in KINDS:
        from facerec.errors import nearest

        raise FacerecError(f"unknown back-end kind {kind!r}{nearest(kind, KINDS)}; choose from {', '.join(KINDS)}")
    unknown = sorted(set(opts) - _OPTIONS[kind])
    if unknown:
        raise FacerecError(f"back-end {kind}: unknown option(s) {', '.join(unknown)} "
                           f"(valid: {', '.join(sorted(_OPTIONS[kind])) or 'none'})")
    return {k: v for k, v in opts.items() if v is not None}


def fit_backend(embeddings: np.ndarray, labels: np.ndarray, kind: str = "plda", **opts) -> Backend:
    """Fit a back-end of `kind` (none, lda, plda) on training embeddings (N, D) and their identity labels
    (N,). Options: lda: d_pca, d_lda; plda: d_pca, whiten (True), length_norm (True), iters (10), reg (1e-6).
    d_pca defaults to what the training statistics support: among identities with 2+ images, at most
    images - identities (the within-class rank, also a cap on d_pca) and identities - 1 directions;
    d_lda defaults to identities - 1."""
    opts = check_options(kind, opts)
    x, lab, multi = _prepare(embeddings, labels)
    if kind == "none":
        return Backend(info=_info(x, lab, multi, x.shape[1]))
    if kind == "lda":
        return fit_lda(x, lab, multi, **opts)
    return fit_plda(x, lab, multi, **opts)


def backend_scores(train_emb, train_labels, emb, i1, i2, kind: str = "plda", **opts) -> np.ndarray:
    """Scores of the pairs (emb[i1[k]], emb[i2[k]]) by a back-end fit on (train_emb, train_labels) only:
    what a protocol that trains per fold (LFW View 2) calls with each fold's training embeddings.
    kind="none" is the plain cosine."""
    b = fit_backend(train_emb, train_labels, kind, **opts)
    emb = np.asarray(emb)
    return b.score(emb[np.asarray(i1)], emb[np.asarray(i2)])


# --- storage -------------------------------------------------------------------------------------------

def from_state(state: dict) -> Backend:
    """A back-end from `state_dict()` (arrays as numpy arrays, torch tensors or lists)."""
    if not isinstance(state, dict) or "kind" not in state:
        raise DataError("back-end state: not a dict with a 'kind' key")
    kind, info = state["kind"], state.get("info") or {}
    if state.get("version", STATE_VERSION) != STATE_VERSION:
        raise DataError(f"back-end state: version {state.get('version')} is not {STATE_VERSION}")
    need = {"none": (), "lda": ("mean", "proj"),
            "plda": ("pre_mean", "pre_proj", "mean", "between", "within", "length_norm")}.get(kind)
    if need is None:
        raise DataError(f"back-end state: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    missing = [k for k in need if k not in state]
    if missing:
        raise DataError(f"back-end state ({kind}): missing key(s) {', '.join(missing)}")
    try:
        if kind == "none":
            return Backend(info)
        if kind == "lda":
            return LDA(_arr(state["mean"]), _arr(state["proj"]), info)
        return PLDA(*(_arr(state[k]) for k in need[:5]), bool(_scalar(state["length_norm"])), info)
    except FacerecError as exc:
        raise DataError(f"back-end state ({kind}): {exc}") from None


def _arr(v) -> np.ndarray:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)


def _scalar(v):
    return v.item() if hasattr(v, "item") else v


def to_checkpoint(state: dict) -> dict:
    """The state with its arrays as float64 torch tensors: loadable with `torch.load(weights_only=True)`."""
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v
            for k, v in state.items()}


def to_json(state: dict) -> dict:
    """The state with its arrays as nested lists (ONNX metadata); float64 survives JSON exactly."""
    return {k: _arr(v).tolist() if isinstance(v, np.ndarray) or hasattr(v, "numpy") else v for k, v in state.items()}


# --- a model's back-end: fit on training faces, recalibrate thresholds, save -----------------------------

def fit_model_backend(model, images, kind: str = "plda", *, labels=None, root=None, val=None, val_root=None,
                      batch_size: int = 64, workers: int | None = None, progress: bool | None = None,
                      **opts) -> dict:
    """`FaceModel.fit_backend`: embed the training faces, fit, set the model's back-end and thresholds."""
    from pathlib import Path

    from facerec.inference import images as image_io

    train = None
    if labels is None:
        from facerec.data.lists import load_train

        if not isinstance(images, (str, Path)):
            raise DataError("fit_backend: pass a train list or a folder of identity folders, or images with labels=")
        train = load_train(images, root)
        paths, labels = train.abspaths(), train.labels
    else:
        paths, labels = image_io.expand(images), np.asarray(labels)
        if len(paths) != len(labels):
            raise DataError(f"fit_backend: {len(paths)} image(s) but {len(labels)} label(s)")
    opts = check_options(kind, opts)  # before any embedding
    pairs = validation_pairs(model, val, val_root)
    if pairs is not None and train is not None:
        check_disjoint(train, pairs)
    kw = {"batch_size": batch_size, "workers": workers, "progress": progress}
    fitted = fit_backend(model.embed(paths, **kw), labels, kind, **opts)
    report = {"kind": kind, **{k: fitted.info[k] for k in ("images", "identities", "identities_2plus", "dim")},
              "val": None, "val_pairs": 0}
    thresholds, val_scores = {}, None
    if pairs is not None:
        from facerec.evaluation.metric_keys import FARS, tar_key
        from facerec.evaluation.metrics import compute_all, eer

        uniq, i1, i2 = pairs.unique_paths()
        e = model.embed([str(Path(pairs.root) / p) for p in uniq], **kw)
        s = fitted.score(e[i1], e[i2])
        m = compute_all(s, pairs.labels)
        thresholds = {"eer": m["eer_threshold"], **{f: m[tar_key(f) + "_threshold"] for f in FARS}}
        val_scores = (s, pairs.labels.astype(np.int64))
        report.update(val=str(pairs.source), val_pairs=len(s), eer_backend=m["eer"],
                      eer_cosine=eer((e[i1].astype(np.float64) * e[i2]).sum(1), pairs.labels)[0])
    fitted.info["calibrated_on"] = report["val"]
    model.backend, model.thresholds, model.val_scores = fitted, thresholds, val_scores
    return report


def validation_pairs(model, val=None, val_root=None):
    """Labelled pairs to recalibrate on: `val`, else the run's own validation list if it still exists."""
    from pathlib import Path

    from facerec.data.lists import read_pairs

    if val is None:
        val, val_root = model.info.get("val"), model.info.get("val_root")
        if not val or not Path(val).is_file():
            return None
    pairs = read_pairs(val, val_root, allow_unknown=True, allow_duplicates=False)
    labelled = (pairs.labels == 0) | (pairs.labels == 1)
    if not labelled.all() or len(np.unique(pairs.labels)) < 2:
        raise DataError(f"{val}: thresholds need labelled pairs, same (1) and different (0), and only those")
    return pairs


def check_disjoint(train, pairs) -> None:
    """Thresholds of a back-end must come from people it did not learn from."""
    from facerec.data import leakage

    report = leakage.check(train, pairs)
    if not report.clean:
        what = (f"{len(report.identities)} identities (e.g. {', '.join(report.identities[:3])})" if report.identities
                else f"{len(report.images)} identical images (e.g. {report.images[0][1]})")
        raise DataError(f"{pairs.source}: {what} of these validation pairs are also in the back-end's training "
                        f"list {train.source or train.root}; recalibrate on pairs of other people")


def save_model(model, path) -> None:
    """`FaceModel.save`: the checkpoint the model came from, with the model's back-end, thresholds and
    validation scores, written atomically."""
    from pathlib import Path

    import torch

    from facerec import checkpoint

    src = model.info.get("source")
    if model.info.get("runtime") == "onnxruntime" or not src or not Path(src).is_file():
        raise DataError(f"{path}: cannot save: the model was not loaded from a facerec checkpoint file (source {src!r})")
    ckpt = checkpoint.load(src)
    if ckpt.get("format") != checkpoint.FORMAT:
        raise DataError(f"{src}: a face_trainer file: a back-end is stored only in a facerec checkpoint")
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "version", "backend", "thresholds", "val_scores")}
    if model.backend is not None:
        payload["backend"] = to_checkpoint(model.backend.state_dict())
    if model.thresholds:
        payload["thresholds"] = {k: float(v) for k, v in model.thresholds.items()}
    if model.val_scores is not None:
        payload["val_scores"] = {"scores": torch.as_tensor(model.val_scores[0], dtype=torch.float64),
                                 "labels": torch.as_tensor(model.val_scores[1], dtype=torch.int8)}
    checkpoint.save(path, payload)
