"""1:N search: probes against a gallery of identity folders (ORL/Yale-style identification).

Templates: `mean` averages an identity's L2-normalised gallery embeddings (then normalises the
mean); `image` keeps every gallery image and scores an identity by its best image. Probes are
identity folders too (labelled: rank-k accuracy and a CMC curve) or a flat folder (unlabelled:
matches only). A probe's label must name a gallery identity to count (closed-set identification).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.lists import scan_identity_folder
from .errors import DataError
from .images import folder_images


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
    from .plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    k = np.arange(1, len(curve) + 1)
    ax.plot(k, curve, "o-", ms=3)
    ax.set(xlabel="rank k", ylabel="identification rate (%)", ylim=(0, 100.5), xlim=(1, max(2, len(curve))),
           title=title or f"CMC (rank-1 {curve[0]:.1f}%)")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def identify(model, gallery, probes, *, template: str = "mean", top_k: int = 5, batch_size: int = 64,
             progress: bool | None = None) -> dict:
    g = scan_identity_folder(gallery)
    p = read_probes(probes)
    names = list(g.classes)
    g_emb = model.embed([os.path.join(g.root, x) for x in g.paths], batch_size=batch_size, progress=progress)
    t, t_ids = templates(g_emb, np.asarray(g.labels), len(names), template)
    p_emb = model.embed(p.paths, batch_size=batch_size, progress=progress)
    order, scores = rank_identities(p_emb, t, t_ids, len(names))
    k = min(top_k, len(names))
    out = {"gallery": str(gallery), "probes": str(probes), "template": template, "identities": len(names),
           "gallery_images": len(g.paths), "probe_images": len(p.paths),
           "matches": [{"probe": path, **({"truth": p.labels[i]} if p.labels else {}),
                        "top": [[names[order[i, r]], float(scores[i, r])] for r in range(k)]}
                       for i, path in enumerate(p.paths)]}
    if p.labels is not None:
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({x for x in p.labels if x not in index})
        if unknown:
            raise DataError(f"{probes}: probe identities not in the gallery: {', '.join(unknown[:5])}"
                            + (f" (+{len(unknown) - 5})" if len(unknown) > 5 else ""))
        curve = cmc(order, np.array([index[x] for x in p.labels]))
        out.update(rank1=float(curve[0]), rank5=float(curve[min(4, len(curve) - 1)]), cmc=curve.tolist())
    return out
