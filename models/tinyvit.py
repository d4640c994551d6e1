"""TinyViT-11M (Wu et al. 2022) from timm (`tiny_vit_11m_224`), pretrained=False.

Trunk: everything but timm's `head` (forward_features: image -> feature map); head: timm's
own head (global pool, LayerNorm, fc to the embedding). With embedding_dim 512 the trunk has
10,547,076 parameters and the head 230,784, exactly as timm builds them.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import FaceModel
from .registry import register_model


class TimmFeatures(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


@register_model()
def tinyvit_11m(*, embedding_dim=512, input_size=112, drop_path_rate=0.0):
    import timm

    # This timm's TinyViT takes no img_size: its window attention pads any resolution.
    net = timm.create_model("tiny_vit_11m_224", pretrained=False, num_classes=embedding_dim,
                            drop_path_rate=drop_path_rate)
    head = net.head
    net.head = nn.Identity()
    return FaceModel(TimmFeatures(net), head, name="tinyvit_11m", embedding_dim=embedding_dim, input_size=input_size)
