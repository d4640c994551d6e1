"""MobileNetV2 (Sandler et al. 2018) from torchvision, random init, `width_mult` exposed.

Trunk: torchvision's `features` (stride 32) + global average pool; head: Linear to the embedding.
Stem (`stem="auto"`): below 128 px the first conv runs at stride 1 (stride 16 overall, so 64 px
ends on 4x4 and 112 px on 7x7); from 128 px up torchvision's stride-2 stem (224 px: 7x7).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import MobileNetV2

from .base import EmbeddingHead, EmbeddingNet
from .registry import register_model
from .resnet import uses_imagenet_stem


class PooledFeatures(nn.Module):
    def __init__(self, features: nn.Module, out_features: int):
        super().__init__()
        self.features = features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)


@register_model()
def mobilenetv2(*, embedding_dim=512, input_size=112, width_mult=1.0, stem="auto", dropout=0.0):
    net = MobileNetV2(width_mult=width_mult)
    if not uses_imagenet_stem(stem, input_size):
        net.features[0][0].stride = (1, 1)
    trunk = PooledFeatures(net.features, net.last_channel)
    return EmbeddingNet(trunk, EmbeddingHead(net.last_channel, embedding_dim, dropout=dropout), name="mobilenetv2",
                     embedding_dim=embedding_dim, input_size=input_size)
