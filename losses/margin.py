"""Margin-based softmax losses over a normalised classifier: CosFace, ArcFace, sub-centre ArcFace.

logits = s * f(cos theta_y) for the true class, s * cos theta_j otherwise, with
  CosFace (Wang et al. 2018):  f = cos theta - m
  ArcFace (Deng et al. 2019):  f = cos(theta + m) = cos*cos_m - sin*sin_m, sin from a clamped
    sqrt so the gradient stays finite at cos = +-1. Where theta + m > pi (cos < cos(pi - m))
    cos(theta + m) would rise again, so the curve is continued as cos theta - m sin(m) (the
    insightface fallback); with `easy_margin` the margin only applies where cos theta > 0.
Logits are always computed in fp32, so fp16/bf16 autocast cannot overflow or round away s = 64.
Literature defaults: ArcFace s=64 m=0.5, CosFace s=64 m=0.35.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facerec.errors import FacerecError

from .base import FaceLoss
from .registry import register_loss


class CosineMargin:
    """CosFace's margin on the true-class cosine: f(cos) = cos - m."""

    def __init__(self, m: float):
        self.m = float(m)

    def __call__(self, cos_y: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m


class AngularMargin:
    """ArcFace's margin on the true-class cosine: f(cos) = cos(theta + m), continued as
    cos - m sin(m) past theta + m = pi (or only where cos > 0 with `easy_margin`)."""

    def __init__(self, m: float, easy_margin: bool = False):
        if not 0.0 <= m < math.pi / 2:
            raise FacerecError(f"arcface margin is an angle in radians in [0, pi/2), got {m}")
        self.m, self.easy_margin = float(m), bool(easy_margin)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m

    def __call__(self, cos_y: torch.Tensor) -> torch.Tensor:
        return self.continued(cos_y, self.rotated(cos_y))

    def rotated(self, cos_y: torch.Tensor) -> torch.Tensor:
        """cos(theta + m) everywhere, before the continuation."""
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp(min=1e-7))  # clamped: finite gradient at cos = +-1
        return cos_y * self.cos_m - sin_y * self.sin_m

    def continued(self, cos_y: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """`phi` = cos(theta + m) where it applies, the continuation elsewhere."""
        if self.easy_margin:
            return torch.where(cos_y > 0, phi, cos_y)
        return torch.where(cos_y > self.th, phi, cos_y - self.mm)


class NormalizedClassifierLoss(FaceLoss):
    """Cosine logits against `weight`, the true-class cosine bent by `margin_fn`.

    `weight` is (num_classes * subcenters, dim): (num_classes, dim) for ArcFace and CosFace;
    for sub-centre ArcFace class c owns rows c*k .. c*k + k - 1 (kept 2-D so checkpoints and
    optimisers treat every classifier alike). `margin_fn` is a callable of the true-class cosine
    alone, so a sharded classifier can apply it to the classes it owns; losses whose margin also
    reads the feature norm or the other classes (AdaFace, MagFace, CurricularFace) have none and
    override `forward`.
    """

    def __init__(self, embedding_dim: int, num_classes: int, scale: float, margin: float, subcenters: int = 1,
                 margin_fn=None):
        super().__init__()
        if scale <= 0:
            raise FacerecError(f"{type(self).__name__.lower()} scale must be > 0, got {scale}")
        if subcenters < 1:
            raise FacerecError(f"subcenters must be >= 1, got {subcenters}")
        self.num_classes = num_classes
        self.scale = float(scale)
        self.margin = float(margin)
        self.margin_fn = margin_fn
        self.subcenters = int(subcenters)
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, embedding_dim))
        nn.init.xavier_normal_(self.weight)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        if self.subcenters > 1:  # the nearest sub-centre speaks for its class
            cos = cos.view(-1, self.num_classes, self.subcenters).amax(dim=2)
        return cos.clamp(-1.0, 1.0)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = self.cosine(embeddings)
            true = F.one_hot(labels, self.num_classes).bool()
            cos_y = cos.gather(1, labels[:, None])
            logits = torch.where(true, self.margin_fn(cos_y), cos) * self.scale
            loss = F.cross_entropy(logits, labels)
        self.record(acc=(cos.argmax(1) == labels).float().mean() * 100)
        return loss


class CosFace(NormalizedClassifierLoss):
    def __init__(self, embedding_dim, num_classes, scale=64.0, margin=0.35):
        super().__init__(embedding_dim, num_classes, scale, margin, margin_fn=CosineMargin(margin))


class ArcFace(NormalizedClassifierLoss):
    def __init__(self, embedding_dim, num_classes, scale=64.0, margin=0.5, easy_margin=False, subcenters=1):
        bend = AngularMargin(margin, easy_margin)  # checks the margin before the classifier is allocated
        super().__init__(embedding_dim, num_classes, scale, margin, subcenters, margin_fn=bend)
        self.easy_margin = bool(easy_margin)


@register_loss(aliases=("amsoftmax",))
def cosface(*, embedding_dim, num_classes, scale=64.0, margin=0.35):
    return CosFace(embedding_dim, num_classes, scale, margin)


@register_loss(aliases=("aamsoftmax",))
def arcface(*, embedding_dim, num_classes, scale=64.0, margin=0.5, easy_margin=False):
    return ArcFace(embedding_dim, num_classes, scale, margin, easy_margin)


@register_loss()
def subcenter_arcface(*, embedding_dim, num_classes, scale=64.0, margin=0.5, subcenters=3, easy_margin=False):
    """Sub-centre ArcFace (Deng et al. 2020): `weight` is (num_classes * subcenters, dim)."""
    return ArcFace(embedding_dim, num_classes, scale, margin, easy_margin, subcenters)
