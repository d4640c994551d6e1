"""Triplet loss (Schroff et al. 2015) on L2-normalised embeddings with squared Euclidean
distances, as face_trainer: mean(relu(d(a,p)^2 - d(a,n)^2 + margin)). Needs K >= 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerec.errors import FacerecError

from .base import FaceLoss
from .miners import mine
from .registry import register_loss

MINING = ("random", "hard", "semihard", "batch_hard")


class Triplet(FaceLoss):
    min_per_class = 2
    num_classes = None

    def __init__(self, margin: float = 0.2, mining: str = "hard", hard_rank: int = 10, hard_prob: float = 0.5):
        super().__init__()
        if mining not in MINING:
            raise FacerecError(f"triplet mining must be one of {', '.join(MINING)}, got {mining!r}")
        if hard_rank < 1:
            raise FacerecError(f"triplet hard_rank must be >= 1 (1 = the hardest negative), got {hard_rank}")
        self.margin, self.mining, self.hard_rank, self.hard_prob = float(margin), mining, int(hard_rank), float(hard_prob)
        self.generator: torch.Generator | None = None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        e = F.normalize(embeddings.float(), dim=1)
        dist = (2 - 2 * e @ e.T).clamp(min=0)  # squared distance of unit vectors
        a, p, n = mine(dist.detach(), labels, mining=self.mining, margin=self.margin, hard_rank=self.hard_rank,
                       hard_prob=self.hard_prob, generator=self.generator)
        if len(a) == 0:
            raise FacerecError("triplet: no anchor in the batch has both a positive and a negative "
                               "(need >= 2 identities with >= 2 images each)")
        d_ap, d_an = dist[a, p], dist[a, n]
        per = F.relu(d_ap - d_an + self.margin)
        self.stats = {"active_triplets": (per > 0).float().mean().item(),
                      "mean_pos_dist": d_ap.detach().sqrt().mean().item(),
                      "mean_neg_dist": d_an.detach().sqrt().mean().item()}
        return per.mean()


@register_loss()
def triplet(*, embedding_dim, num_classes, margin=0.2, mining="hard", hard_rank=10, hard_prob=0.5):
    return Triplet(margin, mining, hard_rank, hard_prob)
