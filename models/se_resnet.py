"""SE-ResNet18: squeeze-and-excitation (Hu et al. 2018, reduction 16) in every basic block.

Built by models.resnet (same blocks, `width`, and stem: no max-pool below 128 px, the ImageNet
stem from 128 px up); SE scales the residual branch before the shortcut is added.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from .registry import register_model
from .resnet import build_resnet


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(w))))


@register_model()
def se_resnet18(*, embedding_dim=512, input_size=112, width=1.0, stem="auto", dropout=0.0, head_bn=False, pool="avg",
                reduction=16):
    return build_resnet("se_resnet18", BasicBlock, [2, 2, 2, 2], embedding_dim=embedding_dim, input_size=input_size,
                        width=width, stem=stem, dropout=dropout, head_bn=head_bn, pool=pool,
                        attention=functools.partial(SqueezeExcite, reduction=reduction))
