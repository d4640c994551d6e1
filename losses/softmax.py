"""Plain softmax cross-entropy over a linear classifier (face_trainer's `softmax`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FaceLoss
from .registry import register_loss


class Softmax(FaceLoss):
    def __init__(self, embedding_dim: int, num_classes: int, label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.xavier_normal_(self.weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = F.linear(embeddings.float(), self.weight.float(), self.bias.float())
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.stats = {"accuracy": (logits.argmax(1) == labels).float().mean().item()}
        return loss


@register_loss()
def softmax(*, embedding_dim, num_classes, label_smoothing=0.0):
    return Softmax(embedding_dim, num_classes, label_smoothing)
