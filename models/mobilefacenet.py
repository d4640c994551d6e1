"""MobileFaceNet (Chen et al. 2018): a 1M-parameter face network with a GDC output.

Stem 3x3/2 conv at every size (no max-pool; the net was designed for 112 px), depthwise 3x3,
bottlenecks 64x5/2, 128x1/2, 128x6, 128x1/2, 128x2 (insightface's expanded widths), 1x1 to 512:
stride 16, so 112 px ends on 7x7 (64 px: 4x4, 224 px: 14x14). GDC, a linear depthwise conv over
the whole map (kernel = map size) + BN, replaces global pooling and closes the trunk, flattened
to 512 features. Head: the paper's linear 1x1 conv to the embedding (a bias-free Linear) + BN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import EmbeddingNet
from .registry import register_model


def conv_bn(cin, cout, k=1, s=1, p=0, groups=1, act=True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class DepthWise(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, hidden: int):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, hidden), conv_bn(hidden, hidden, 3, stride, 1, groups=hidden),
                                  conv_bn(hidden, cout, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def stage(cin, cout, n, stride, hidden) -> list[nn.Module]:
    return [DepthWise(cin if i == 0 else cout, cout, stride if i == 0 else 1, hidden) for i in range(n)]


class LinearBNHead(nn.Module):
    def __init__(self, channels: int, embedding_dim: int):
        super().__init__()
        self.linear = nn.Linear(channels, embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x))


@register_model()
def mobilefacenet(*, embedding_dim=512, input_size=112):
    trunk = nn.Sequential(
        conv_bn(3, 64, 3, 2, 1),
        conv_bn(64, 64, 3, 1, 1, groups=64),
        # (in, out, blocks, stride, expanded width) as insightface's MobileFaceNet
        *stage(64, 64, 5, 2, 128),
        *stage(64, 128, 1, 2, 256),
        *stage(128, 128, 6, 1, 256),
        *stage(128, 128, 1, 2, 512),
        *stage(128, 128, 2, 1, 256),
        conv_bn(128, 512),
        conv_bn(512, 512, math.ceil(input_size / 16), groups=512, act=False),  # GDC
        nn.Flatten(1),
    )
    head = LinearBNHead(512, embedding_dim)
    return EmbeddingNet(trunk, head, name="mobilefacenet", embedding_dim=embedding_dim, input_size=input_size)
