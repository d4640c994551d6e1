"""AdaFace (Kim et al., CVPR 2022): a margin that adapts to image quality, read off the feature norm.

As the official implementation (mk-minchul/AdaFace, head.py) computes it, with a = ||f|| of the raw
embedding (this loss normalises the embedding itself):
  safe_a  = clip(a, 0.001, 100), detached
  mu, sd  = EMAs of the batch mean and (unbiased) std of safe_a: x <- t_alpha * batch + (1 - t_alpha) * x,
            updated in training mode only, before they are used; buffers (start 20 and 100), so they
            are in checkpoints. A batch of one image updates the mean only (its std is undefined).
  scaler  = clip((safe_a - mu) / (sd + eps) * h, -1, 1)
  true class:  cos(clip(theta_y - m * scaler, eps, pi - eps)) - (m + m * scaler)
  every cosine is first clamped to [-1 + eps, 1 - eps]; logits = s * that.
High-norm (high-quality) images get a larger, ArcFace-like angular margin, low-norm ones a smaller,
CosFace-like one. Defaults are the paper's: s=64, m=0.4, h=0.333, t_alpha=0.01, eps=1e-3.
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
        raise FacerecError(f"adaface {key} must be {allowed}, got {value!r}")


class AdaFace(NormalizedClassifierLoss):
    def __init__(self, embedding_dim, num_classes, scale=64.0, margin=0.4, h=0.333, t_alpha=0.01, eps=1e-3):
        _check("scale", scale, lambda v: v > 0, "a number > 0")
        _check("margin", margin, lambda v: 0 <= v < 1, "in [0, 1)")
        _check("h", h, lambda v: v >= 0, "a number >= 0 (0: a fixed CosFace margin)")
        _check("t_alpha", t_alpha, lambda v: 0 < v <= 1, "in (0, 1]")
        _check("eps", eps, lambda v: 0 < v <= 0.1, "in (0, 0.1]")
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.h, self.t_alpha, self.eps = float(h), float(t_alpha), float(eps)
        self.register_buffer("batch_mean", torch.tensor(20.0))
        self.register_buffer("batch_std", torch.tensor(100.0))

    @torch.no_grad()
    def _update(self, safe_norms: torch.Tensor) -> None:
        a = self.t_alpha
        self.batch_mean.copy_(safe_norms.mean() * a + (1 - a) * self.batch_mean)
        if safe_norms.numel() > 1:
            self.batch_std.copy_(safe_norms.std() * a + (1 - a) * self.batch_std)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            e = embeddings.float()
            norms = e.norm(dim=1, keepdim=True)
            safe_norms = norms.detach().clamp(0.001, 100.0)
            if self.training:
                self._update(safe_norms)
            scaler = ((safe_norms - self.batch_mean) / (self.batch_std + self.eps) * self.h).clamp(-1.0, 1.0)
            raw = self.cosine(e)
            cos = raw.clamp(-1.0 + self.eps, 1.0 - self.eps)
            cos_y = cos.gather(1, labels[:, None])
            theta = (cos_y.acos() - self.margin * scaler).clamp(self.eps, math.pi - self.eps)  # g_angular
            target = theta.cos() - (self.margin + self.margin * scaler)  # g_additive
            true = F.one_hot(labels, self.num_classes).bool()
            logits = torch.where(true, target, cos) * self.scale
            loss = F.cross_entropy(logits, labels)
        self.record(acc=(raw.argmax(1) == labels).float().mean() * 100, feat_norm=norms.mean())
        return loss


@register_loss()
def adaface(*, embedding_dim, num_classes, scale=64.0, margin=0.4, h=0.333, t_alpha=0.01, eps=1e-3):
    """AdaFace: feature-norm-adaptive margin; EMA statistics of the norm kept as buffers."""
    return AdaFace(embedding_dim, num_classes, scale, margin, h, t_alpha, eps)
