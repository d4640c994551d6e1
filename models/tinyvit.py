"""TinyViT-11M (Wu et al. 2022) from timm (`tiny_vit_11m_224`), pretrained=False, never downloaded.

Trunk: everything but timm's `head` (patch embed + stages), then the global average pool that
timm's head starts with, flattened (448 features). Head: timm's own `NormMlpClassifierHead`
(LayerNorm + fc to the embedding) fed that vector as a 1x1 map, so its pool is a no-op and the
arithmetic is timm's. With embedding_dim 512: trunk 10,547,076, head 230,784 parameters.

Input size: this timm's TinyViT takes no `img_size`; its window attention pads every window,
so any size works (64 px ends on a 2x2 map, 224 px on 7x7) and none needs to divide by 32.
There is no stem switch: the 4x4/4 patch embedding is used at every size.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import EmbeddingNet
from .registry import register_model


class TimmTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x).mean((2, 3))


class MapHead(nn.Module):
    """Runs a timm head (which expects a feature map) on a pooled feature vector."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, :, None, None])


@register_model()
def tinyvit_11m(*, embedding_dim=512, input_size=112, drop_path_rate=0.0):
    import timm

    net = timm.create_model("tiny_vit_11m_224", pretrained=False, num_classes=embedding_dim,
                            drop_path_rate=drop_path_rate)
    head = MapHead(net.head)
    net.head = nn.Identity()
    return EmbeddingNet(TimmTrunk(net), head, name="tinyvit_11m", embedding_dim=embedding_dim, input_size=input_size)
