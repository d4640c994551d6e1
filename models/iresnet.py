"""IResNet18 (ArcFace's "improved residual" network, insightface arcface_torch).

IR block: BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus the shortcut. Face stem at every
size: 3x3 stride-1 conv, no max-pool, so 112 px ends on a 7x7 map (64 px: 4x4). The head is
arcface_torch's: BN2d - Dropout - Flatten - FC(512 * h * w -> embedding) - BN1d. That FC is large
(12.8M at 112 px) and is the "final FC" the budget excludes; the trunk has 11.0M parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import FaceModel
from .registry import register_model


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNetTrunk(nn.Module):
    def __init__(self, layers, width: float = 1.0):
        super().__init__()
        chans = [max(8, int(round(c * width / 8)) * 8) for c in (64, 128, 256, 512)]
        self.inplanes = chans[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=1e-5)
        self.prelu = nn.PReLU(self.inplanes)
        self.layers = nn.Sequential(*[self._make_layer(c, n) for c, n in zip(chans, layers)])
        self.out_channels = chans[-1]

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=2, bias=False),
                                   nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.prelu(self.bn1(self.conv1(x))))


class ArcFaceHead(nn.Module):
    def __init__(self, channels: int, spatial: int, embedding_dim: int, dropout: float):
        super().__init__()
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * spatial * spatial, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(torch.flatten(self.dropout(self.bn2(x)), 1)))


@register_model()
def iresnet18(*, embedding_dim=512, input_size=112, width=1.0, dropout=0.0):
    trunk = IResNetTrunk([2, 2, 2, 2], width)
    spatial = math.ceil(input_size / 16)  # four stride-2 stages with padding 1
    head = ArcFaceHead(trunk.out_channels, spatial, embedding_dim, dropout)
    return FaceModel(trunk, head, name="iresnet18", embedding_dim=embedding_dim, input_size=input_size)
