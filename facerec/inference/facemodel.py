"""A trained model in a notebook or a service: `facerec.load(path)`.

    m = facerec.load("runs/.../best.pt", device="auto")
    e = m.embed(["a.jpg", "b.jpg"])            # (2, D) float32, L2-normalised
    m.verify("a.jpg", "b.jpg")                 # score, threshold, same
    m.threshold(far=1e-3)                      # from the run's validation scores

The checkpoint's own preprocessing (face crop, resize, centre crop, mean/std) and flip TTA (as the
run used it) are applied; an ONNX file exported by `facerec export` loads the same way and runs on
onnxruntime, with the preprocessing read from its metadata.

A checkpoint may hold a verification back-end (`facerec.evaluation.backend`: LDA or PLDA fit on training
identities' embeddings, `m.fit_backend(train_list)` then `m.save(path)`). Then `score` and `verify`
use its scores instead of the cosine, and the thresholds are on its scale (PLDA: a log-likelihood
ratio, not a cosine in [-1, 1]).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facerec.data.transforms import Preprocess, eval_transform
from facerec.errors import DataError, FacerecError
from facerec.inference import images as image_io
from facerec.util.progress import progress as progress_of

log = logging.getLogger(__name__)
META_KEY = "facerec"  # ONNX metadata_props / TorchScript extra file holding the preprocessing
ZERO_NORM = 1e-12  # an embedding shorter than this has no direction to L2-normalise


@dataclass
class Verification:
    score: float
    threshold: float
    same: bool

    def __str__(self) -> str:
        return f"{'SAME' if self.same else 'DIFFERENT'} (score {self.score:.4f}, threshold {self.threshold:.4f})"


class _Chunks(torch.utils.data.Dataset):
    """One item = one preprocessed batch, so DataLoader workers decode while the model runs."""

    def __init__(self, items: list, fn, batch_size: int):
        self.items, self.fn, self.bs = items, fn, batch_size

    def __len__(self) -> int:
        return (len(self.items) + self.bs - 1) // self.bs

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.fn(self.items[i * self.bs : (i + 1) * self.bs])


class FaceModel:
    """An embedding network with its preprocessing and its validation thresholds."""

    def __init__(self, net, pre: Preprocess, *, device=None, tta: bool = False, info: dict | None = None,
                 thresholds: dict | None = None, val_scores: tuple[np.ndarray, np.ndarray] | None = None,
                 backend=None):
        self.net, self.pre, self.tta = net, pre, bool(tta)
        self.device = torch.device(device or "cpu")
        self.info = dict(info or {})
        self.thresholds = dict(thresholds or {})
        self.val_scores = val_scores
        self.backend = backend  # a facerec.evaluation.backend.Backend scoring pairs, or None: cosine
        self._transform = eval_transform(pre)

    def __repr__(self) -> str:
        backend = f", backend={self.backend.kind}" if self.backend is not None else ""
        crops = f", test_crops={self.pre.test_crops}" if self.pre.test_crops != 1 else ""
        return (f"FaceModel({self.info.get('model', '?')}, {self.pre.input_size} px, tta={self.tta}{crops}{backend}, "
                f"source={self.info.get('source', '?')!r})")

    @property
    def test_crops(self) -> int:
        """Crops of each face embedded and summed (1: the centre; 5: and the four corners)."""
        return self.pre.test_crops

    @test_crops.setter
    def test_crops(self, n: int) -> None:
        from facerec.data.transforms import TEST_CROPS

        if n not in TEST_CROPS:
            raise FacerecError(f"test crops: expected one of {', '.join(map(str, TEST_CROPS))}, got {n!r}")
        self.pre = replace(self.pre, test_crops=int(n))
        self._transform = eval_transform(self.pre)

    # --- images -> embeddings -------------------------------------------------------------------
    def _prepare(self, items: list) -> torch.Tensor:
        return self._transform(image_io.faces(items, self.pre))

    def preprocess(self, images) -> torch.Tensor:
        """(B, 3, S, S) float32: what the network (and an exported model) takes; (B, V, 3, S, S) when
        the preprocessing has V test crops, whose embeddings `embed` sums."""
        return self._prepare(image_io.expand(images))

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        from facerec.evaluation.scoring import embed_batches

        return embed_batches(self.net, [x], device=self.device, tta=False).numpy()

    def embed(self, images, tta: bool | None = None, *, batch_size: int = 64, workers: int | None = None,
              progress: bool | None = None, notes: bool = True) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings. `tta` (default: as the run used it) adds each
        image's mirror embedding before normalising. `notes`: log one note about images smaller than
        `decode.MIN_SIDE` px or in unusual modes (16-bit, CMYK, palette, alpha), from their headers."""
        from facerec.evaluation.scoring import sum_views

        items = image_io.expand(images)
        if notes:
            image_io.note_images(items, self.pre)
        tta = self.tta if tta is None else bool(tta)
        chunks = _Chunks(items, self._prepare, batch_size)
        if workers is None:
            from facerec.data.datasets import default_workers

            workers = 0 if len(chunks) <= 2 else min(4, default_workers())
        loader = torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=workers)
        show = len(chunks) > 4 if progress is None else progress
        out = []
        for x in progress_of(loader, desc="embed", unit="batch", total=len(chunks), bar=bool(show) and _tty()):
            out.append(sum_views(self._forward, x, tta))
        e = np.concatenate(out) if out else np.zeros((0, self.embedding_dim), np.float32)
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        bad = ~np.isfinite(norm[:, 0]) | (norm[:, 0] < ZERO_NORM)
        if bad.any():
            # A zero (or NaN/inf) vector has no direction: "normalising" it would hand back zeros, and every
            # score with it would be 0 (or NaN) instead of an error.
            i = int(np.argmax(bad))
            raise DataError(f"{image_io.label(items[i], i)}: the network's embedding is "
                            f"{'not finite' if not np.isfinite(norm[i, 0]) else 'zero'} ({int(bad.sum())} of {len(e)} "
                            "image(s)), so it cannot be L2-normalised: the checkpoint holds a diverged or collapsed "
                            "model; use an earlier one")
        return (e / norm).astype(np.float32)

    @property
    def embedding_dim(self) -> int:
        return int(self.info.get("embedding_dim") or getattr(self.net, "embedding_dim", 0))

    # --- decisions ------------------------------------------------------------------------------
    def threshold(self, far: float | None = None) -> float:
        """The EER threshold of the run's validation scores, or (with `far`) the lowest threshold whose
        false accept rate on them is at most `far`. Never +inf, so an image always matches itself: where
        the validation pairs cannot measure `far` (fewer than one false accept of their different pairs,
        e.g. FAR=1e-3 of 500), a note (logged) says so and which threshold is used (`metrics.far_threshold`).
        With a back-end, thresholds are back-end scores, set by `fit_backend`."""
        source = self.info.get("source")
        if self.backend is not None and "eer" not in self.thresholds:
            raise DataError(f"{source}: its {self.backend.kind} back-end was fit without validation pairs to set "
                            "thresholds on; pass threshold= (a back-end score), or fit it again with val=")
        # A cosine never exceeds 1: a threshold above it would refuse an image compared with itself.
        cap = 1.0 if self.backend is None else math.inf
        if far is None:
            if "eer" not in self.thresholds:
                raise DataError(f"{source}: no validation threshold stored (a run without --val, "
                                "or a face_trainer file); pass threshold=")
            t = float(self.thresholds["eer"])
            if math.isfinite(t):
                return min(t, cap)
            if self.val_scores is None:
                raise DataError(f"{source}: its stored EER threshold is not a number ({t}); pass threshold=")
            from facerec.evaluation.metrics import far_threshold

            t, _ = far_threshold(*self.val_scores, 1e-12)  # degenerate scores (all tied): the strictest finite one
            log.warning("%s: the validation EER threshold is %s (tied validation scores): using the highest "
                        "different-pair score, %.4f", source, self.thresholds["eer"], t)
            return min(t, cap)
        if isinstance(far, bool) or not (isinstance(far, (int, float)) and 0 < far < 1):
            raise DataError(f"far must lie in (0, 1), got {far}")
        if self.val_scores is not None:
            from facerec.evaluation.metrics import far_threshold

            t, note = far_threshold(*self.val_scores, far)
            if note:
                log.warning("%s", note)
            return min(t, cap)
        key = f"{far:.0e}".replace("e-0", "e-")
        usable = {k: float(v) for k, v in self.thresholds.items() if k != "eer" and math.isfinite(float(v))}
        if key in usable:
            n_neg = self.info.get("val_different")
            if n_neg and far * n_neg < 1 - 1e-9:  # an exported model: the rule was applied when it was stored
                log.warning("FAR=%g is %.2g false accept(s) of %d different validation pairs, which cannot measure "
                            "it: the stored threshold %.4f is the lowest score above every one of them, or the "
                            "highest of them where no same pair scores higher; the smallest FAR these pairs "
                            "measure is 1/%d = %.2g", far, far * n_neg, n_neg, usable[key], n_neg, 1 / n_neg)
            return min(usable[key], cap)
        have = ", ".join(sorted(usable, key=float, reverse=True)) or "none"
        why = "is not a number (too few different validation pairs)" if key in self.thresholds else "is not stored"
        raise DataError(f"{source}: the threshold for FAR={far:g} {why}; "
                        f"{'the smallest FAR it holds is ' + min(usable, key=float) if usable else 'it holds none'} "
                        f"(have: {have}); pass threshold=")

    def verify(self, a, b, *, threshold: float | None = None, far: float | None = None) -> Verification:
        """Cosine score of two images and the decision at `threshold` (default: the run's EER threshold,
        or the one at `far`). The score is computed in float64 and rounded to 9 decimals (float32
        embeddings hold no more), so an image compared with itself scores exactly 1.0 and matches at
        any threshold in [-1, 1]. With a back-end the score is the back-end's and `threshold` any finite
        number on its scale."""
        if threshold is not None:
            threshold = check_threshold(threshold) if self.backend is None else _finite_threshold(threshold)
        e = self.embed([*image_io.expand(a)[:1], *image_io.expand(b)[:1]], progress=False)  # one note for both
        score = cosine(e[0], e[1]) if self.backend is None else float(self.backend.score(e[:1], e[1:])[0])
        thr = threshold if threshold is not None else self.threshold(far)
        return Verification(score, thr, score >= thr)

    # --- verification back-end ------------------------------------------------------------------
    def score_embeddings(self, a, b) -> np.ndarray:
        """(N,) float64 scores of the row-wise embedding pairs (a[i], b[i]): the back-end's, else the cosine."""
        from facerec.evaluation.backend import Backend

        return (self.backend or Backend()).score(a, b)

    def score(self, a, b, **embed_kw) -> np.ndarray:
        """(N,) scores of the image pairs (a[i], b[i]) (paths, folders, PIL images or uint8 arrays; one
        image a side is one pair): the back-end's, else the cosine."""
        ia, ib = image_io.expand(a), image_io.expand(b)
        if len(ia) != len(ib):
            raise DataError(f"score takes pairs: {len(ia)} image(s) on one side, {len(ib)} on the other")
        e = self.embed([*ia, *ib], **{"progress": False, **embed_kw})
        return self.score_embeddings(e[: len(ia)], e[len(ia):])

    def fit_backend(self, images, kind: str = "plda", **kw) -> dict:
        """Fit a verification back-end (`facerec.evaluation.backend`: none, lda or plda) on the embeddings of training
        faces and use it from now on: `images` is a train list (`identity relpath`) or a folder of identity
        folders, or images with `labels=`. Fit it on identities the model will not be asked about.
        The thresholds are recomputed on the back-end's scores of `val=` pairs (default: the run's own
        validation list, if it is still there; pairs of people in the training list are refused); with
        none, they are removed (pass threshold= to verify). Other keywords: root, val_root, batch_size,
        workers, progress, and the back-end's options (d_pca, d_lda, iters, ...). Returns a summary:
        images, identities, validation pairs, their EER with cosine and with the back-end."""
        from facerec.inference.model_backend import fit_model_backend

        return fit_model_backend(self, images, kind, **kw)

    def save(self, path) -> None:
        """Write the checkpoint this model was loaded from, with its back-end, thresholds and validation
        scores (atomically); load it with `facerec.load`."""
        from facerec.inference.model_backend import save_model

        save_model(self, path)


def _finite_threshold(value) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise FacerecError(f"threshold must be a number, got {value!r}") from None
    if not math.isfinite(t):
        raise FacerecError(f"threshold must be a finite number, got {value}")
    return t


def check_threshold(value) -> float:
    """A cosine threshold: a finite number in [-1, 1] (nan would refuse everything, inf even an image
    compared with itself)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise FacerecError(f"threshold must be a number in [-1, 1], got {value!r}") from None
    if not (math.isfinite(t) and -1 <= t <= 1):
        raise FacerecError(f"threshold must be a finite cosine in [-1, 1] (the score of a model without a "
                           f"back-end), got {value}")
    return t


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings in float64, rounded to 9 decimals and clipped to [-1, 1]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-300)
    return float(np.clip(round(c, 9), -1.0, 1.0))


class OnnxFaceModel(FaceModel):
    """An exported ONNX model on onnxruntime; preprocessing, TTA and thresholds from its metadata."""

    def __init__(self, path, session, meta: dict):
        super().__init__(None, Preprocess.from_dict(meta["preprocess"]), tta=meta.get("tta", False),
                         info={**meta.get("info", {}), "source": str(path), "runtime": "onnxruntime",
                               "val_different": (meta.get("val_pairs") or {}).get("different")},
                         thresholds=meta.get("thresholds"), backend=_backend(meta, str(path)))
        self.session = session
        self._input = session.get_inputs()[0].name

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self._input: x.numpy()})[0].astype(np.float32)


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _val_scores(ckpt: dict):
    v = ckpt.get("val_scores")
    if not v:
        return None
    return np.asarray(v["scores"], dtype=np.float64), np.asarray(v["labels"], dtype=np.int64)


def from_checkpoint(ckpt: dict, source: str, *, device="cpu", arch: str | None = None, **model_kwargs) -> FaceModel:
    from facerec import checkpoint

    net = checkpoint.build_model(ckpt, source, arch, **model_kwargs).to(device).eval()
    pre = Preprocess.from_dict(ckpt["preprocess"]) if ckpt.get("preprocess") else Preprocess()
    config = ckpt.get("config") or {}
    info = {"source": source, "model": ckpt["model"].get("name") or arch, "embedding_dim": net.embedding_dim,
            "format": ckpt.get("format"), "val": config.get("val"), "val_root": config.get("val_root")}
    return FaceModel(net, pre, device=device, tta=bool(config.get("tta")), info=info,
                     thresholds=ckpt.get("thresholds"), val_scores=_val_scores(ckpt), backend=_backend(ckpt, source))


def _backend(stored: dict, source: str):
    """The back-end a checkpoint (or ONNX metadata) holds under 'backend', or None."""
    if not stored.get("backend"):
        return None
    from facerec.evaluation.backend import from_state

    try:
        return from_state(stored["backend"])
    except DataError as exc:
        raise DataError(f"{source}: key 'backend': {exc}") from None


def load_onnx(path) -> OnnxFaceModel:
    import onnx
    import onnxruntime as ort

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise DataError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if META_KEY not in props:
        raise DataError(f"{path}: an ONNX model without facerec metadata (export it with `facerec export`)")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return OnnxFaceModel(path, session, json.loads(props[META_KEY]))


def load(path, device="auto", *, arch: str | None = None, **model_kwargs) -> FaceModel:
    """A facerec checkpoint (best.pt/last.pt), a face_trainer `.model` (with `arch=`), or an ONNX file
    from `facerec export`."""
    from facerec import checkpoint
    from facerec.util import device as devices

    if str(path).endswith(".onnx"):
        return load_onnx(path)
    if not Path(path).exists():
        raise DataError(f"{path}: checkpoint not found")
    ckpt = checkpoint.load(path)
    return from_checkpoint(ckpt, str(path), device=devices.resolve(device), arch=arch, **model_kwargs)
