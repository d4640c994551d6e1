"""A margin-softmax classifier split across the ranks of a distributed run (Partial FC's idea,
on PyTorch's own collectives).

Rank r keeps the class centres of classes [lo_r, hi_r) only, so the classifier never has to fit
on one device. Each step every rank all-gathers the embeddings (with gradient) and labels of the
global batch, computes its classes' logits (the wrapped loss's margin applied to the true class
where this rank owns it), and the softmax is completed with an all-reduced max and an all-reduced
(differentiable) sum of exponentials and true-class logits. Every rank then holds the same loss:
the cross-entropy of the whole classifier over the whole global batch.

Gradients: the all-reduce's backward sums the N ranks' (identical) gradients, so the local centres
receive N times theirs; a hook divides by N. The embeddings' gradient reaches each rank N-fold
through the all-gather and DDP's average over ranks restores it (see distributed.gather_with_grad).
Class sampling (Partial FC's sample rate) is not implemented: every class is in every step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from facerec.errors import FacerecError

from .base import FaceLoss
from .margin import NormalizedClassifierLoss


class ShardedClassifier(FaceLoss):
    """This rank's rows [lo*k, hi*k) of a (num_classes * k, dim) classifier; `margin` bends the
    true-class cosine (a callable of that cosine alone, as Partial FC takes its margin loss)."""

    def __init__(self, margin, *, scale: float, weight: torch.Tensor, num_classes: int, lo: int, hi: int,
                 world_size: int, subcenters: int = 1, min_per_class: int = 1):
        super().__init__()
        if weight.shape[0] != (hi - lo) * subcenters:
            raise FacerecError(f"sharded classifier: {weight.shape[0]} rows for classes [{lo}, {hi}) x {subcenters}")
        self.margin, self.scale, self.subcenters = margin, float(scale), int(subcenters)
        self.num_classes, self.min_per_class = num_classes, min_per_class
        self.lo, self.hi, self.world_size = lo, hi, world_size
        self.weight = nn.Parameter(weight.detach().clone())
        self.weight.register_hook(lambda g: g / self.world_size)

    @classmethod
    def split(cls, loss: FaceLoss, lo: int, hi: int, world_size: int) -> ShardedClassifier:
        """Rank's share of a whole margin classifier (its rows are copied, its margin handed over)."""
        # Only a loss whose margin is all in margin_fn(cos_y) can be split by class: AdaFace, MagFace
        # and CurricularFace also read the feature norm or the other classes' cosines.
        if (not isinstance(loss, NormalizedClassifierLoss) or loss.margin_fn is None
                or type(loss).forward is not NormalizedClassifierLoss.forward):
            raise FacerecError(f"--sharded-classifier needs a margin classifier (arcface, cosface, subcenter "
                               f"arcface), not {type(loss).__name__}")
        k = loss.subcenters
        return cls(loss.margin_fn, scale=loss.scale, weight=loss.weight[lo * k : hi * k], num_classes=loss.num_classes,
                   lo=lo, hi=hi, world_size=world_size, subcenters=k, min_per_class=loss.min_per_class)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from facerec.trainer.distributed import all_reduce_with_grad as all_reduce

        k = self.subcenters
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
            if k > 1:
                cos = cos.view(len(cos), -1, k).amax(dim=2)
            cos = cos.clamp(-1.0, 1.0)
            mine = (labels >= self.lo) & (labels < self.hi)
            local_y = (labels - self.lo).clamp(0, self.hi - self.lo - 1)
            cos_y = cos.gather(1, local_y[:, None])
            true = F.one_hot(local_y, self.hi - self.lo).bool() & mine[:, None]
            logits = torch.where(true, self.margin(cos_y), cos) * self.scale
            top = logits.detach().amax(1)
            if dist.is_initialized():
                dist.all_reduce(top, op=dist.ReduceOp.MAX)
            sum_exp = (logits - top[:, None]).exp().sum(1)
            target = (logits * true).sum(1)
            if dist.is_initialized():
                sum_exp, target = all_reduce(sum_exp), all_reduce(target)
            loss = (sum_exp.log() + top - target).mean()
            best_local = cos.detach().max(1)
            best = best_local.values.clone()
            if dist.is_initialized():
                dist.all_reduce(best, op=dist.ReduceOp.MAX)
            hit = (mine & (best_local.values >= best) & (best_local.indices == local_y)).float().sum()
            if dist.is_initialized():
                dist.all_reduce(hit)
        self.record(acc=hit / len(labels) * 100)
        return loss

    def full_weight(self, counts: list[int]) -> torch.Tensor:
        """Every rank's centres, in class order (a collective: all ranks call it)."""
        from facerec.trainer.distributed import gather_rows

        return gather_rows(self.weight.detach(), [c * self.subcenters for c in counts])
