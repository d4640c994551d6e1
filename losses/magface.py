"""MagFace (Meng et al., CVPR 2021): the feature's magnitude a = ||f|| measures quality; the margin
grows with it, and a regulariser pulls easy samples to large magnitudes.

As the official implementation (IrvingMeng/MagFace, models/magface.py) computes it, on the raw
(unnormalised) embedding: this loss normalises the embedding itself, and needs its norm:
  a     = clamp(||f||, l_a, u_a)
  m(a)  = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m          (gradient flows through a)
  true class:  cos(theta_y + m(a)), continued as cos theta_y - m(a) sin(m(a)) where theta_y + m(a) > pi
  loss  = cross_entropy(s * logits) + lambda_g * mean(g(a)),   g(a) = 1 / a + a / u_a^2
Defaults are the paper's: s=64, l_a=10, u_a=110, l_m=0.45, u_m=0.8, lambda_g=35. Test embeddings are
compared by cosine; the magnitude is a quality score, not part of the match.
Logits are computed in fp32, so autocast cannot round away s = 64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facerec.errors import FacerecError

from .margin import NormalizedClassifierLoss
from .registry import register_loss


def _check(key: str, value, ok, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise FacerecError(f"magface {key} must be {allowed}, got {value!r}")


class MagFace(NormalizedClassifierLoss):
    def __init__(self, embedding_dim, num_classes, scale=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0):
        _check("scale", scale, lambda v: v > 0, "a number > 0")
        _check("l_a", l_a, lambda v: v > 0, "a magnitude > 0")
        _check("u_a", u_a, lambda v: v > l_a, f"a magnitude > l_a ({l_a})")
        _check("l_m", l_m, lambda v: 0 <= v < math.pi / 2, "an angle in radians in [0, pi/2)")
        _check("u_m", u_m, lambda v: l_m <= v < math.pi / 2, f"an angle in radians in [l_m ({l_m}), pi/2)")
        _check("lambda_g", lambda_g, lambda v: v >= 0, "a number >= 0")
        super().__init__(embedding_dim, num_classes, scale, margin=l_m)  # `margin`: the smallest one, m(l_a)
        self.l_a, self.u_a, self.l_m, self.u_m = float(l_a), float(u_a), float(l_m), float(u_m)
        self.lambda_g = float(lambda_g)

    def margin_of(self, a: torch.Tensor) -> torch.Tensor:
        """m(a) for magnitudes already clamped to [l_a, u_a]."""
        return (self.u_m - self.l_m) / (self.u_a - self.l_a) * (a - self.l_a) + self.l_m

    def regulariser(self, a: torch.Tensor) -> torch.Tensor:
        """g(a) = 1/a + a/u_a^2 for magnitudes already clamped to [l_a, u_a]."""
        return 1.0 / a + a / self.u_a**2

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            e = embeddings.float()
            norms = e.norm(dim=1, keepdim=True)
            a = norms.clamp(self.l_a, self.u_a)
            m = self.margin_of(a)
            cos = self.cosine(e)
            cos_y = cos.gather(1, labels[:, None])
            sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp(min=1e-7))  # clamped: finite gradient at cos = +-1
            phi = cos_y * torch.cos(m) - sin_y * torch.sin(m)
            target = torch.where(cos_y > torch.cos(math.pi - m), phi, cos_y - torch.sin(math.pi - m) * m)
            true = F.one_hot(labels, self.num_classes).bool()
            logits = torch.where(true, target, cos) * self.scale
            loss = F.cross_entropy(logits, labels) + self.lambda_g * self.regulariser(a).mean()
        self.record(acc=(cos.argmax(1) == labels).float().mean() * 100, feat_norm=norms.mean())
        return loss


@register_loss()
def magface(*, embedding_dim, num_classes, scale=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0):
    """MagFace: magnitude-aware ArcFace margin plus the magnitude regulariser; needs raw embeddings."""
    return MagFace(embedding_dim, num_classes, scale, l_a, u_a, l_m, u_m, lambda_g)
