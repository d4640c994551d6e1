"""CBAM-ResNet18: channel then spatial attention (Woo et al. 2018) in every basic block.

Built by models.resnet (same blocks, `width`, and stem: no max-pool below 128 px, the ImageNet
stem from 128 px up); CBAM refines the residual branch before the shortcut is added.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from .registry import register_model
from .resnet import build_resnet


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        x = x * torch.sigmoid(channel)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


@register_model()
def cbam_resnet18(*, embedding_dim=512, input_size=112, width=1.0, stem="auto", dropout=0.0, head_bn=False, pool="avg",
                  reduction=16):
    return build_resnet("cbam_resnet18", BasicBlock, [2, 2, 2, 2], embedding_dim=embedding_dim, input_size=input_size,
                        width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool,
                        attention=functools.partial(CBAM, reduction=reduction))
