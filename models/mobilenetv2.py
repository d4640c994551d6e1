"""MobileNetV2 (Sandler et al. 2018) from torchvision, random init, `width_mult` exposed.

Trunk: torchvision's `features` (stride 32) + global average pool; head: Linear to the embedding.
Below 128 px the first conv's stride is set to 1 so the last map stays >= 4x4 at 64 px.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import MobileNetV2

from .base import EmbeddingHead, FaceModel
from .registry import register_model


class PooledFeatures(nn.Module):
    def __init__(self, features: nn.Module, out_features: int):
        super().__init__()
        self.features = features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)


@register_model()
def mobilenetv2(*, embedding_dim=512, input_size=112, width_mult=1.0, dropout=0.0):
    net = MobileNetV2(width_mult=width_mult)
    if input_size < 128:
        net.features[0][0].stride = (1, 1)
    trunk = PooledFeatures(net.features, net.last_channel)
    return FaceModel(trunk, EmbeddingHead(net.last_channel, embedding_dim, dropout=dropout), name="mobilenetv2",
                     embedding_dim=embedding_dim, input_size=input_size)
