"""IResNet18 (ArcFace's "improved residual" network, as insightface arcface_torch builds it).

IR block: BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus the shortcut; no max-pool.
Stem (`stem="auto"`): the face stem, 3x3 stride-1 conv, below 128 px, so 112 px ends on 7x7
exactly as arcface_torch (64 px: 4x4); from 128 px up the same conv at stride 2 so 224 px also
ends on 7x7 instead of 14x14 (which would make the head's FC 51M parameters). `face` or
`imagenet` force stride 1 or 2.

Trunk: stem + four IR stages, flattened (512 x h x w features, no pooling: arcface_torch has none).
Head: arcface_torch's output layer BN2d - Dropout - Flatten - FC(512*h*w -> embedding) - BN1d,
run on that vector reshaped back to the map. The FC is large (12.8M at 112 px) and it is the
"final FC" the budget excludes; the trunk has 11.18M parameters, inside the 11.5M budget.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import ArcFaceHead, EmbeddingNet
from .registry import register_model
from .resnet import scaled, uses_imagenet_stem


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNetTrunk(nn.Module):
    def __init__(self, layers, *, width: float = 1.0, stem_stride: int = 1):
        super().__init__()
        chans = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.inplanes = chans[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.prelu = nn.PReLU(self.inplanes)
        self.layers = nn.Sequential(*[self._make_layer(c, n) for c, n in zip(chans, layers)])
        self.out_channels = chans[-1]

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes))
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.layers(self.prelu(self.bn1(self.conv1(x)))), 1)


@register_model()
def iresnet18(*, embedding_dim=512, input_size=112, width=1.0, stem="auto", dropout=0.0):
    stride = 2 if uses_imagenet_stem(stem, input_size) else 1
    trunk = IResNetTrunk([2, 2, 2, 2], width=width, stem_stride=stride)
    spatial = math.ceil(input_size / stride / 16)  # 3x3 convs with padding 1 halve rounding up
    head = ArcFaceHead(trunk.out_channels, spatial, embedding_dim, dropout)
    return EmbeddingNet(trunk, head, name="iresnet18", embedding_dim=embedding_dim, input_size=input_size)
