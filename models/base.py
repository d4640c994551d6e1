"""The one interface every backbone exposes: `trunk` (features) then `head` (embedding)."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingNet(nn.Module):
    """trunk: image -> feature vector (counts against the budget).
    head: feature vector -> embedding (final FC/projection with its BN/dropout)."""

    def __init__(self, trunk: nn.Module, head: nn.Module, *, name: str, embedding_dim: int, input_size: int):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.name = name
        self.embedding_dim = embedding_dim
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class EmbeddingHead(nn.Module):
    """Linear projection to the embedding, optionally with dropout before and BN after."""

    def __init__(self, in_features: int, embedding_dim: int, *, dropout: float = 0.0, bn: bool = False):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(self.dropout(x)))


def __getattr__(name):
    # The old name of EmbeddingNet; `facerec.FaceModel` is the trained model `facerec.load` returns.
    if name == "FaceModel":
        import warnings

        warnings.warn("facerec.models.base.FaceModel is now EmbeddingNet", DeprecationWarning, stacklevel=2)
        return EmbeddingNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
