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
    from facerec.evaluation.backend_fit import _info, _prepare, fit_lda, fit_plda

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
