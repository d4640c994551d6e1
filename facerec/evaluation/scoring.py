"""Embed each unique image once (batched, inference mode), then cosine-score the pairs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facerec.data.datasets import FaceImages, loader
from facerec.data.lists import PairList
from facerec.data.transforms import Preprocess, eval_transform
from facerec.util.progress import progress as progress_of


@torch.inference_mode()
def embed_batches(model: torch.nn.Module, batches, *, device="cpu", tta: bool = False,
                  memory_format=torch.channels_last) -> torch.Tensor:
    """(N, D) float32 CPU embeddings of normalised image batches, in eval mode (restored after).
    A batch is (B, C, S, S), or (B, V, C, S, S) for V test crops; each image's embedding is the
    sum over its views, and with `tta` over their mirrors too."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    for x in batches:
        x = x.to(device, non_blocking=True)
        out.append(sum_views(lambda v: model(v.contiguous(memory_format=memory_format)).float(), x, tta).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "embedding_dim", 0))


def sum_views(forward, x, tta: bool):
    """forward's embeddings of (B, C, S, S) or (B, V, C, S, S) images, summed (unnormalised, as the
    mirror's always was) over the V views and, with `tta`, their mirrors; forward may return
    tensors or numpy arrays."""
    b = x.shape[0]
    if x.dim() == 5:
        x = x.flatten(0, 1)
    e = forward(x)
    if tta:
        e = e + forward(torch.flip(x, dims=[3]))
    return e.reshape(b, -1, e.shape[-1]).sum(1)


def embed(model: torch.nn.Module, paths: list[str], pre: Preprocess, *, device="cpu", batch_size: int = 128,
          workers: int | None = None, tta: bool = False, progress: bool = True, channels_last: bool = True) -> torch.Tensor:
    """Decode `paths` in DataLoader workers and embed them (see `embed_batches`)."""
    ds = FaceImages(paths, pre=pre, transform=eval_transform(pre))
    batches = progress_of(loader(ds, batch_size=batch_size, workers=workers, device=device), desc="embed",
                          unit="batch", bar=progress)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return embed_batches(model, batches, device=device, tta=tta, memory_format=memory_format)


def cosine_scores(emb: torch.Tensor, i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    e = F.normalize(emb.float(), dim=1)
    a, b = e[torch.as_tensor(i1)], e[torch.as_tensor(i2)]
    return (a * b).sum(1).numpy().astype(np.float64)


@dataclass
class PairScores:
    pairs: PairList
    scores: np.ndarray


def score_pairs(members: list[tuple[torch.nn.Module, Preprocess]], pairs: PairList, **embed_kw) -> PairScores:
    """Several (model, preprocess) members form an ensemble: their L2-normalised embeddings are averaged."""
    from facerec.inference.images import note_images

    uniq, i1, i2 = pairs.unique_paths()
    paths = [os.path.join(pairs.root, p) for p in uniq]
    note_images(paths, members[0][1])  # once, whatever the ensemble's size
    emb, dims = None, []
    for m, pre in members:
        e = F.normalize(embed(m, paths, pre, **embed_kw), dim=1)
        dims.append(e.shape[1])
        if emb is not None and e.shape != emb.shape:
            from facerec.errors import FacerecError

            raise FacerecError(f"ensemble members must share one embedding size: {', '.join(map(str, dims))}")
        emb = e if emb is None else emb + e
    return PairScores(pairs, cosine_scores(emb, i1, i2))


def report_pairs(members, pairs: PairList, *, output=None, plot=None, as_json: bool = False, **embed_kw) -> int:
    """Score, write the scores file (face_trainer format), print metrics when labels are known."""
    import json
    import sys
    from pathlib import Path

    from facerec.errors import FacerecError
    from facerec.evaluation import metrics, plots
    from facerec.evaluation.scores import write_scores

    if not pairs.has_labels and not output:
        raise FacerecError(f"{pairs.source}: labels are unknown, so nothing can be measured; pass --output to write scores")
    result = score_pairs(members, pairs, **embed_kw)
    if output:
        write_scores(output, result.scores, pairs.label_text, pairs.path1, pairs.path2, pairs.folds)
        print(f"scores: {output} ({len(pairs)} pairs)", file=sys.stderr if as_json else sys.stdout)
    if not pairs.has_labels:
        return 0
    m = metrics.compute_all(result.scores, pairs.labels, pairs.folds)
    plot = plot or (str(Path(output).with_suffix("")) + "_roc_det.png" if output else None)
    if plot:
        plots.plot_roc_det({"eval": (result.scores, pairs.labels)}, plot)
        m["plot"] = plot
    print(json.dumps(metrics.jsonable(m)) if as_json else metrics.format_table(m))
    return 0
