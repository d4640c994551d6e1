"""Plain softmax cross-entropy over a linear classifier with bias (face_trainer's `softmax`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facerec.errors import FacerecError

from .base import FaceLoss
from .registry import register_loss


class Softmax(FaceLoss):
    def __init__(self, embedding_dim: int, num_classes: int, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise FacerecError(f"softmax label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.xavier_normal_(self.weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Under autocast F.linear would run in fp16/bf16 whatever its inputs; keep logits fp32.
        with torch.autocast(embeddings.device.type, enabled=False):
            logits = F.linear(embeddings.float(), self.weight.float(), self.bias.float())
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.record(acc=(logits.argmax(1) == labels).float().mean() * 100)
        return loss


@register_loss()
def softmax(*, embedding_dim, num_classes, label_smoothing=0.0):
    return Softmax(embedding_dim, num_classes, label_smoothing)
