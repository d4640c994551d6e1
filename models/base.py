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


class ArcFaceHead(nn.Module):
    """arcface_torch's output layer on a (C, h, w) feature map given flattened: BN2d - Dropout -
    Flatten - FC(C*h*w -> embedding) - BN1d. Unlike pooling it keeps where on the face a feature
    is (eyes above the mouth), at the cost of an FC h*w times larger."""

    def __init__(self, channels: int, spatial: int, embedding_dim: int, dropout: float):
        super().__init__()
        self.map_shape = (channels, spatial, spatial)
        self.bn2 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * spatial * spatial, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(x.unflatten(1, self.map_shape))
        return self.features(self.fc(torch.flatten(self.dropout(x), 1)))


def __getattr__(name):
    # The old name of EmbeddingNet; `facerec.FaceModel` is the trained model `facerec.load` returns.
    if name == "FaceModel":
        import warnings

        warnings.warn("facerec.models.base.FaceModel is now EmbeddingNet", DeprecationWarning, stacklevel=2)
        return EmbeddingNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
