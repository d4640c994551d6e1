"""Triplet miners: (squared distances, labels) -> (anchor, positive, negative) index tensors.

Negatives are always of another identity and positives of the same one (never the anchor).
`hard` keeps face_trainer's meaning: with probability hard_prob the negative is drawn among the
hard_rank hardest negatives (hard_rank=1: the hardest), otherwise uniformly. face_trainer drew
from hard_rank + 1 candidates and its semi-hard fallback could return the positive; both fixed.
Randomness comes from `generator` (default: torch's global RNG, which checkpoints restore).
"""

from __future__ import annotations

import torch

INF = float("inf")


def _masks(labels: torch.Tensor):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def _random_pick(mask: torch.Tensor, generator) -> torch.Tensor:
    """For each row, a uniformly random column among the True ones."""
    r = _rand(mask.shape, generator, mask.device)
    return torch.where(mask, r, torch.full_like(r, -1.0)).argmax(1)


def _valid_anchors(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(pos.any(1) & neg.any(1)).squeeze(1)


def mine(dist: torch.Tensor, labels: torch.Tensor, *, mining: str, margin: float, hard_rank: int = 1,
         hard_prob: float = 1.0, generator: torch.Generator | None = None):
    pos_mask, neg_mask = _masks(labels)
    a = _valid_anchors(pos_mask, neg_mask)
    pos_mask, neg_mask, d = pos_mask[a], neg_mask[a], dist[a]
    if mining == "batch_hard":
        p = torch.where(pos_mask, d, torch.full_like(d, -INF)).argmax(1)
        n = torch.where(neg_mask, d, torch.full_like(d, INF)).argmin(1)
        return a, p, n
    p = _random_pick(pos_mask, generator)
    if mining == "random":
        n = _random_pick(neg_mask, generator)
    elif mining == "hard":
        d_neg = torch.where(neg_mask, d, torch.full_like(d, INF))
        ranked = d_neg.argsort(1)
        n_neg = neg_mask.sum(1)
        k = torch.minimum(torch.full_like(n_neg, hard_rank), n_neg)
        r = (_rand(k.shape, generator, d.device) * k).long().clamp(max=(k - 1).clamp(min=0))
        hard = ranked.gather(1, r[:, None]).squeeze(1)
        use_hard = _rand(k.shape, generator, d.device) < hard_prob
        n = torch.where(use_hard, hard, _random_pick(neg_mask, generator))
    elif mining == "semihard":
        d_ap = d.gather(1, p[:, None])
        semi = neg_mask & (d > d_ap) & (d < d_ap + margin)
        hardest = torch.where(neg_mask, d, torch.full_like(d, INF)).argmin(1)
        n = torch.where(semi.any(1), _random_pick(semi, generator), hardest)
    else:
        raise ValueError(f"unknown mining {mining!r}")
    return a, p, n
