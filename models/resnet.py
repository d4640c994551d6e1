"""ResNet family with a width multiplier, built from torchvision's blocks (never pretrained).

At width 1.0 the trunk is torchvision's ResNet with `fc` removed, parameter for parameter
(resnet18: 11,176,512). `width` scales every stage's channels (rounded to multiples of 8).
Stem: `auto` keeps the ImageNet stem (7x7/2 conv + 3x3/2 max-pool) from 128 px up and drops
the max-pool below 128 px, where it would leave a 2x2 map at layer4 (64 px: 4x4 instead);
`imagenet` or `face` force either. `head_bn` adds a BatchNorm1d after the projection (the
BN-neck margin losses like). `pool`: `avg` (torchvision's global average pooling, then the
projection) or `flatten` (no pooling: arcface_torch's output layer BN2d - Dropout - Flatten - FC -
BN1d on the last feature map, which keeps where on the face each feature is; the FC grows with
the map, 2x2 at 64 px with the ImageNet stem, and is the "final FC" the budget excludes; its BN1d
stands in for `head_bn`). The attention variants (se_resnet18, cbam_resnet18) live in their
own files and reuse `ResNetTrunk` with an attention factory.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from facerec.errors import FacerecError

from .base import ArcFaceHead, EmbeddingHead, EmbeddingNet
from .registry import register_model

POOLS = ("avg", "flatten")


def scaled(channels: int, width: float) -> int:
    return max(8, round(channels * width / 8) * 8)


def uses_imagenet_stem(stem: str, input_size: int) -> bool:
    """The `stem` rule every family shares: 'auto' downsamples early from 128 px up only."""
    if stem == "auto":
        return input_size >= 128
    if stem not in ("imagenet", "face"):
        raise FacerecError(f"stem must be 'auto', 'imagenet' or 'face', got {stem!r}")
    return stem == "imagenet"


class AttentionBasicBlock(BasicBlock):
    """BasicBlock with a channel/spatial attention module applied to the residual branch."""

    def __init__(self, *args, attention: Callable[[int], nn.Module], **kw):
        super().__init__(*args, **kw)
        self.attention = attention(self.bn2.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class ResNetTrunk(nn.Module):
    """conv1-bn-relu-[maxpool]-layer1..4-[avgpool]-flatten: image -> feature vector."""

    def __init__(self, block, layers, *, width: float = 1.0, maxpool: bool = True,
                 attention: Callable[[int], nn.Module] | None = None, pool: str = "avg"):
        super().__init__()
        if pool not in POOLS:
            raise FacerecError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.inplanes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if maxpool else nn.Identity()
        if attention is not None and block is not BasicBlock:
            raise ValueError("attention is implemented for basic blocks only")
        # The factory is used while building only: a lambda kept on the module would not pickle.
        make = block if attention is None else functools.partial(AttentionBasicBlock, attention=attention)
        self.layer1 = self._make_layer(block, make, scaled(64, width), layers[0])
        self.layer2 = self._make_layer(block, make, scaled(128, width), layers[1], stride=2)
        self.layer3 = self._make_layer(block, make, scaled(256, width), layers[2], stride=2)
        self.layer4 = self._make_layer(block, make, scaled(512, width), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.Identity()
        self.out_channels = self.inplanes
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, make, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [make(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [make(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def build_resnet(name, block, layers, *, embedding_dim, input_size, width=1.0, stem="auto", dropout=0.0,
                 head_bn=False, pool="avg", attention=None) -> EmbeddingNet:
    if width <= 0:
        raise FacerecError(f"width must be > 0, got {width}")
    maxpool = uses_imagenet_stem(stem, input_size)
    trunk = ResNetTrunk(block, layers, width=width, maxpool=maxpool, attention=attention, pool=pool)
    if pool == "flatten":
        # Every stride-2 step (stem conv, max-pool, layer2-4's first conv) halves rounding up.
        spatial = math.ceil(input_size / 2 ** (4 + maxpool))
        head = ArcFaceHead(trunk.out_channels, spatial, embedding_dim, dropout)
    else:
        head = EmbeddingHead(trunk.out_channels, embedding_dim, dropout=dropout, bn=head_bn)
    return EmbeddingNet(trunk, head, name=name, embedding_dim=embedding_dim, input_size=input_size)


@register_model()
def resnet18(*, embedding_dim=512, input_size=112, width=1.0, stem="auto", dropout=0.0, head_bn=False, pool="avg"):
    return build_resnet("resnet18", BasicBlock, [2, 2, 2, 2], embedding_dim=embedding_dim, input_size=input_size,
                        width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool)


@register_model()
def resnet18_w075(*, embedding_dim=512, input_size=112, stem="auto", dropout=0.0, head_bn=False, pool="avg"):
    return resnet18(embedding_dim=embedding_dim, input_size=input_size, width=0.75, stem=stem, dropout=dropout,
                    head_bn=head_bn, pool=pool)


@register_model()
def resnet18_w050(*, embedding_dim=512, input_size=112, stem="auto", dropout=0.0, head_bn=False, pool="avg"):
    return resnet18(embedding_dim=embedding_dim, input_size=input_size, width=0.5, stem=stem, dropout=dropout,
                    head_bn=head_bn, pool=pool)


@register_model()
def resnet34(*, embedding_dim=512, input_size=112, width=1.0, stem="auto", dropout=0.0, head_bn=False, pool="avg"):
    """Stock ResNet34: 21.3M trunk parameters, over the 11.5M budget (the guard refuses it)."""
    return build_resnet("resnet34", BasicBlock, [3, 4, 6, 3], embedding_dim=embedding_dim, input_size=input_size,
                        width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool)


@register_model()
def resnet34_slim(*, embedding_dim=512, input_size=112, width=0.73, stem="auto", dropout=0.0, head_bn=False,
                  pool="avg"):
    """ResNet34's depth at 0.73 width (channels 48/96/184/376, 11,352,752 trunk parameters): the
    widest on a 0.01 grid that fits 11.5M, as `facerec params resnet34 --check` suggests."""
    return build_resnet("resnet34_slim", BasicBlock, [3, 4, 6, 3], embedding_dim=embedding_dim,
                        input_size=input_size, width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool)


@register_model()
def resnet18_bottleneck(*, embedding_dim=512, input_size=112, width=0.875, stem="auto", dropout=0.0, head_bn=False,
                        pool="avg"):
    """Bottleneck blocks (x4 expansion) in ResNet18's [2, 2, 2, 2] layout at 0.875 width (planes
    56/112/224/448, 1792 features, 10,681,944 trunk parameters). 0.91 would also fit, by 4k."""
    return build_resnet("resnet18_bottleneck", Bottleneck, [2, 2, 2, 2], embedding_dim=embedding_dim,
                        input_size=input_size, width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool)
