"""CurricularFace (Huang et al., CVPR 2020): ArcFace's margin on the true class, and hard negatives
weighted more as training goes on (easy samples first, hard ones later).

As the official implementation (HuangYG123/CurricularFace, head/metrics.py) computes it:
  true class:     cos(theta_y + m), continued as cos theta_y - m sin(m) where theta_y + m > pi
                  (ArcFace's fallback, see margin.py)
  t             <- 0.01 * mean(cos theta_y) + 0.99 * t   (a buffer, starts at 0; updated in training
                  mode only, before it is used)
  other class j:  cos_j * (t + cos_j) where cos_j > cos(theta_y + m) (a hard negative), else cos_j
  logits = s * that. Defaults are the paper's: s=64, m=0.5.
Logits are computed in fp32, so autocast cannot round away s = 64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facerec.errors import FacerecError

from .margin import AngularMargin, NormalizedClassifierLoss
from .registry import register_loss


def _check(key: str, value, ok, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise FacerecError(f"curricularface {key} must be {allowed}, got {value!r}")


class CurricularFace(NormalizedClassifierLoss):
    momentum = 0.01  # the paper's alpha for the EMA of t

    def __init__(self, embedding_dim, num_classes, scale=64.0, margin=0.5):
        _check("scale", scale, lambda v: v > 0, "a number > 0")
        _check("margin", margin, lambda v: 0 <= v < math.pi / 2, "an angle in radians in [0, pi/2)")
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.angular = AngularMargin(margin)  # the true class's target is ArcFace's
        self.register_buffer("t", torch.zeros(()))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = self.cosine(embeddings)
            cos_y = cos.gather(1, labels[:, None])
            cos_ym = self.angular.rotated(cos_y)  # cos(theta_y + m): hard negatives are measured against it
            target = self.angular.continued(cos_y, cos_ym)
            if self.training:
                with torch.no_grad():
                    self.t.copy_(cos_y.mean() * self.momentum + (1 - self.momentum) * self.t)
            true = F.one_hot(labels, self.num_classes).bool()
            hard = (cos > cos_ym.detach()) & ~true
            negatives = torch.where(hard, cos * (self.t + cos), cos)
            logits = torch.where(true, target, negatives) * self.scale
            loss = F.cross_entropy(logits, labels)
        self.record(acc=(cos.argmax(1) == labels).float().mean() * 100, t=self.t)
        return loss


@register_loss()
def curricularface(*, embedding_dim, num_classes, scale=64.0, margin=0.5):
    """CurricularFace: ArcFace margin, hard negatives modulated by the EMA buffer t."""
    return CurricularFace(embedding_dim, num_classes, scale, margin)
