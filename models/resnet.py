"""ResNet family (torchvision blocks, built from scratch; never pretrained)."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet as tv

from .base import EmbeddingHead, FaceModel
from .registry import register_model


def _stem_keeps_maxpool(stem: str, input_size: int) -> bool:
    # Below 128 px the ImageNet stem leaves a 2x2..3x3 map at layer4; face nets drop the max-pool there.
    if stem == "auto":
        return input_size >= 128
    if stem not in ("imagenet", "face"):
        raise ValueError(f"stem must be 'auto', 'imagenet' or 'face', got {stem!r}")
    return stem == "imagenet"


def _resnet(name, block, layers, embedding_dim, input_size, stem, dropout):
    net = tv.ResNet(block, layers)
    if not _stem_keeps_maxpool(stem, input_size):
        net.maxpool = nn.Identity()
    feat = net.fc.in_features
    net.fc = nn.Identity()
    head = EmbeddingHead(feat, embedding_dim, dropout=dropout)
    return FaceModel(net, head, name=name, embedding_dim=embedding_dim, input_size=input_size)


@register_model()
def resnet18(*, embedding_dim=512, input_size=112, stem="auto", dropout=0.0):
    return _resnet("resnet18", tv.BasicBlock, [2, 2, 2, 2], embedding_dim, input_size, stem, dropout)
