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
    def __init__(self, inner: NormalizedClassifierLoss, lo: int, hi: int, world_size: int):
        super().__init__()
        # Only a loss whose margin is all in bend(cos_y) can be split by class: AdaFace, MagFace and
        # CurricularFace also read the feature norm or the other classes' cosines.
        if not isinstance(inner, NormalizedClassifierLoss) or type(inner).forward is not NormalizedClassifierLoss.forward:
            raise FacerecError(f"--sharded-classifier needs a margin classifier (arcface, cosface, subcenter "
                               f"arcface), not {type(inner).__name__}")
        self.inner, self.lo, self.hi, self.world_size = inner, lo, hi, world_size
        self.num_classes = inner.num_classes
        self.min_per_class = inner.min_per_class
        k = inner.subcenters
        self.weight = nn.Parameter(inner.weight.detach()[lo * k : hi * k].clone())
        self.weight.register_hook(lambda g: g / self.world_size)
        del inner.weight  # the full matrix is not kept: only this rank's rows

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from facerec.distributed import all_reduce_with_grad as all_reduce

        inner, k = self.inner, self.inner.subcenters
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
            if k > 1:
                cos = cos.view(len(cos), -1, k).amax(dim=2)
            cos = cos.clamp(-1.0, 1.0)
            mine = (labels >= self.lo) & (labels < self.hi)
            local_y = (labels - self.lo).clamp(0, self.hi - self.lo - 1)
            cos_y = cos.gather(1, local_y[:, None])
            true = F.one_hot(local_y, self.hi - self.lo).bool() & mine[:, None]
            logits = torch.where(true, inner.bend(cos_y), cos) * inner.scale
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
        from facerec.distributed import gather_rows

        return gather_rows(self.weight.detach(), [c * self.inner.subcenters for c in counts])
