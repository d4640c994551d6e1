"""Triplet loss (Schroff et al. 2015) as face_trainer computes it: embeddings L2-normalised,
distances squared Euclidean (= 2 - 2 cos), loss = mean(relu(d(a,p)^2 - d(a,n)^2 + margin)).
The margin is therefore in squared-distance units (range [0, 4]); the logged
mean_pos_dist / mean_neg_dist are plain Euclidean distances. Needs K >= 2 images per identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerec.errors import FacerecError

from .base import FaceLoss
from .miners import STRATEGIES, mine
from .registry import register_loss


class Triplet(FaceLoss):
    min_per_class = 2
    num_classes = None

    def __init__(self, margin: float = 0.2, mining: str = "hard", hard_rank: int = 10, hard_prob: float = 0.5):
        super().__init__()
        if mining not in STRATEGIES:
            raise FacerecError(f"triplet mining must be one of {', '.join(STRATEGIES)}, got {mining!r}")
        if hard_rank < 1:
            raise FacerecError(f"triplet hard_rank must be >= 1 (1 = the hardest negative), got {hard_rank}")
        if not 0.0 <= hard_prob <= 1.0:
            raise FacerecError(f"triplet hard_prob must be in [0, 1], got {hard_prob}")
        if margin < 0:
            raise FacerecError(f"triplet margin must be >= 0, got {margin}")
        self.margin, self.mining, self.hard_rank, self.hard_prob = float(margin), mining, int(hard_rank), float(hard_prob)
        # None: torch's global RNG (restored on resume); set a torch.Generator for a private stream.
        self.generator: torch.Generator | None = None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # 2 - 2 cos loses most of its digits in bf16, so distances stay fp32 under autocast.
        with torch.autocast(embeddings.device.type, enabled=False):
            e = F.normalize(embeddings.float(), dim=1)
            dist = (2 - 2 * e @ e.T).clamp(min=0)
        a, p, n = mine(dist.detach(), labels, mining=self.mining, margin=self.margin, hard_rank=self.hard_rank,
                       hard_prob=self.hard_prob, generator=self.generator)
        if len(a) == 0:
            if not (labels[:, None] == labels[None, :]).sum(1).gt(1).any():
                raise FacerecError(f"{self.name}: no identity has 2 images in this batch; triplet needs "
                                   "per_class (K) >= 2")
            # One identity only (no negative): nothing to learn from this batch, but no reason to stop.
            self.record(active_triplets=dist.new_zeros(()), mean_pos_dist=dist.new_zeros(()),
                        mean_neg_dist=dist.new_zeros(()))
            return embeddings.sum() * 0.0
        d_ap, d_an = dist[a, p], dist[a, n]
        per = F.relu(d_ap - d_an + self.margin)
        self.record(active_triplets=(per > 0).float().mean() * 100, mean_pos_dist=d_ap.sqrt().mean(),
                    mean_neg_dist=d_an.sqrt().mean())
        return per.mean()


@register_loss()
def triplet(*, embedding_dim, num_classes, margin=0.2, mining="hard", hard_rank=10, hard_prob=0.5):
    return Triplet(margin, mining, hard_rank, hard_prob)
