"""Triplet miners: (distance matrix, labels, generator) -> (anchor, positive, negative) indices.

`dist` is whatever the loss compares (the triplet loss passes squared Euclidean distances of
unit vectors, so `margin` is in those units). Every anchor that has both a positive (same
identity, not itself) and a negative (another identity) yields one triplet; negatives are
always of another identity, in every strategy and every fallback.

  random      random positive, random negative
  hard        random positive; with probability hard_prob a negative drawn uniformly among the
              hard_rank nearest negatives (hard_rank=1: the nearest), else a random negative.
              face_trainer's meaning, without its off-by-one (it drew from hard_rank + 1).
  semihard    FaceNet: random positive, a random negative with d(a,p) < d(a,n) < d(a,p) + margin;
              where none exists, the nearest negative (face_trainer fell back to any sample,
              the positive included).
  batch_hard  Hermans et al. 2017: the farthest positive and the nearest negative.
Randomness comes from `generator` (None: torch's global RNG, which checkpoints restore).
"""

from __future__ import annotations

import torch

INF = float("inf")
STRATEGIES = ("random", "hard", "semihard", "batch_hard")


def _rand(shape, generator, device) -> torch.Tensor:
    # Drawn on the CPU so a CPU generator serves any device and results match across devices.
    return torch.rand(shape, generator=generator).to(device)


def _random_pick(mask: torch.Tensor, generator) -> torch.Tensor:
    """For each row, a uniformly random column among the True ones (rows need one True)."""
    r = _rand(mask.shape, generator, mask.device)
    return torch.where(mask, r, torch.full_like(r, -1.0)).argmax(1)


def _nearest(d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, d, torch.full_like(d, INF)).argmin(1)


def _random(d, pos, neg, generator, **_):
    return _random_pick(pos, generator), _random_pick(neg, generator)


def _hard(d, pos, neg, generator, *, hard_rank: int, hard_prob: float, **_):
    p = _random_pick(pos, generator)
    ranked = torch.where(neg, d, torch.full_like(d, INF)).argsort(1)
    k = neg.sum(1).clamp(max=hard_rank)
    r = (_rand(k.shape, generator, d.device) * k).long().minimum(k - 1)
    hard = ranked.gather(1, r[:, None]).squeeze(1)
    use_hard = _rand(k.shape, generator, d.device) < hard_prob
    return p, torch.where(use_hard, hard, _random_pick(neg, generator))


def _semihard(d, pos, neg, generator, *, margin: float, **_):
    p = _random_pick(pos, generator)
    d_ap = d.gather(1, p[:, None])
    semi = neg & (d > d_ap) & (d < d_ap + margin)
    return p, torch.where(semi.any(1), _random_pick(semi, generator), _nearest(d, neg))


def _batch_hard(d, pos, neg, generator, **_):
    farthest_pos = torch.where(pos, d, torch.full_like(d, -INF)).argmax(1)
    return farthest_pos, _nearest(d, neg)


_MINERS = {"random": _random, "hard": _hard, "semihard": _semihard, "batch_hard": _batch_hard}


def mine(dist: torch.Tensor, labels: torch.Tensor, *, mining: str, margin: float = 0.2, hard_rank: int = 1,
         hard_prob: float = 1.0, generator: torch.Generator | None = None):
    if mining not in _MINERS:
        raise ValueError(f"unknown mining {mining!r}; known: {', '.join(STRATEGIES)}")
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    a = torch.nonzero(pos.any(1) & neg.any(1)).squeeze(1)
    p, n = _MINERS[mining](dist[a], pos[a], neg[a], generator, margin=margin, hard_rank=hard_rank,
                           hard_prob=hard_prob)
    return a, p, n
