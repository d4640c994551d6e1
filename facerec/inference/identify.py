"""1:N search: probes against a gallery of identity folders (ORL/Yale-style identification).

Templates: `mean` averages an identity's L2-normalised gallery embeddings (then normalises the
mean); `image` keeps every gallery image and scores an identity by its best image. Probes are
identity folders too (labelled: rank-k accuracy and a CMC curve) or a flat folder (unlabelled:
matches only). A probe's label must name a gallery identity to count (closed-set identification).
A probe whose best score is below the model's threshold (its validation EER threshold unless given)
is marked unknown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.data.lists import scan_identity_folder
from facerec.errors import DataError
from facerec.inference.images import folder_images

log = logging.getLogger(__name__)


@dataclass
class Probes:
    paths: list[str]
    labels: list[str] | None  # identity names, or None for a flat folder


def read_probes(folder) -> Probes:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: probe folder not found")
    if any(e.is_dir() for e in os.scandir(folder)):
        tl = scan_identity_folder(folder)
        return Probes([os.path.join(tl.root, p) for p in tl.paths], [tl.classes[i] for i in tl.labels])
    return Probes(folder_images(folder), None)


def templates(emb: np.ndarray, labels: np.ndarray, n_ids: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(template vectors, identity of each template)."""
    if mode == "image":
        return emb, labels
    if mode != "mean":
        raise DataError(f"template must be 'mean' or 'image', got {mode!r}")
    sums = np.zeros((n_ids, emb.shape[1]), np.float64)
    np.add.at(sums, labels, emb)
    t = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return t.astype(np.float32), np.arange(n_ids)


def rank_identities(probe_emb: np.ndarray, tmpl: np.ndarray, tmpl_ids: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Per probe, identities ordered best first and their scores (an identity's best template)."""
    sim = probe_emb @ tmpl.T
    best = np.full((len(probe_emb), n_ids), -np.inf, np.float32)
    for j in range(n_ids):  # identities, not images: a loop of n_ids vectorised maxima
        cols = tmpl_ids == j
        if cols.any():
            best[:, j] = sim[:, cols].max(1)
    order = np.argsort(-best, axis=1, kind="stable")
    return order, np.take_along_axis(best, order, axis=1)


def cmc(order: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """cmc[k-1] = fraction (percent) of probes whose identity is among the top k."""
    rank = np.argmax(order == truth[:, None], axis=1)
    found = (order == truth[:, None]).any(1)
    curve = np.array([np.mean(found & (rank < k)) for k in range(1, order.shape[1] + 1)]) * 100
    return curve


def plot_cmc(curve: np.ndarray, path, title: str = "") -> None:
    from facerec.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    k = np.arange(1, len(curve) + 1)
    ax.plot(k, curve, "o-", ms=3)
    ax.set(xlabel="rank k", ylabel="identification rate (%)", ylim=(0, 100.5), xlim=(1, max(2, len(curve))),
           title=title or f"CMC (rank-1 {curve[0]:.1f}%)")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def decision_threshold(model, threshold: float | None) -> tuple[float | None, str]:
    """(threshold, where it comes from): the given cosine, else the model's validation EER threshold, else
    None, said in a note (then no match is marked unknown): for a model without one (e.g. a face_trainer
    file), or one with a verification back-end, whose thresholds are on the back-end's scale while
    identification ranks by cosine."""
    from facerec.inference.facemodel import check_threshold

    if threshold is not None:
        return check_threshold(threshold), "given"
    if getattr(model, "backend", None) is not None:
        log.warning("%s: its thresholds are %s back-end scores and identification ranks by cosine: no match is "
                    "marked unknown (pass --threshold, a cosine, to mark those below it)",
                    model.info.get("source"), model.backend.kind)
        return None, "none"
    try:
        return model.threshold(), "the model's EER threshold"
    except DataError as exc:
        log.warning("%s: no match is marked unknown (pass --threshold to mark those below it)", exc)
        return None, "none"


def identify(model, gallery, probes, *, template: str = "mean", top_k: int = 5, batch_size: int = 64,
             progress: bool | None = None, threshold: float | None = None) -> dict:
    """Top-k gallery identities per probe. A probe whose rank-1 score is below `threshold` (default: the
    model's validation EER threshold) is marked `unknown`: its best match is no stronger than the model's
    own same/different boundary, so it names no one (open-set); rank-k accuracy and the CMC stay closed-set."""
    g = scan_identity_folder(gallery)
    p = read_probes(probes)
    names = list(g.classes)
    if p.labels is not None:  # before any embedding
        missing = sorted(set(p.labels) - set(names))
        if missing:
            raise DataError(f"{probes}: probe identities not in the gallery: {', '.join(missing[:5])}"
                            + (f" (+{len(missing) - 5})" if len(missing) > 5 else ""))
    thr, thr_from = decision_threshold(model, threshold)
    g_paths = [os.path.join(g.root, x) for x in g.paths]
    emb = model.embed(g_paths + p.paths, batch_size=batch_size, progress=progress)  # one pass, one image note
    g_emb, p_emb = emb[: len(g_paths)], emb[len(g_paths) :]
    t, t_ids = templates(g_emb, np.asarray(g.labels), len(names), template)
    order, scores = rank_identities(p_emb, t, t_ids, len(names))
    k = min(top_k, len(names))
    unknown = scores[:, 0] < thr if thr is not None else np.zeros(len(p.paths), bool)
    out = {"gallery": str(gallery), "probes": str(probes), "template": template, "identities": len(names),
           "gallery_images": len(g.paths), "probe_images": len(p.paths), "threshold": thr, "threshold_from": thr_from,
           "unknown": int(unknown.sum()),
           "matches": [{"probe": path, **({"truth": p.labels[i]} if p.labels else {}),
                        "top": [[names[order[i, r]], float(scores[i, r])] for r in range(k)],
                        "unknown": bool(unknown[i])}
                       for i, path in enumerate(p.paths)]}
    if p.labels is not None:
        index = {n: i for i, n in enumerate(names)}
        curve = cmc(order, np.array([index[x] for x in p.labels]))
        out.update(rank1=float(curve[0]), rank5=float(curve[min(4, len(curve) - 1)]), cmc=curve.tolist())
    return out
