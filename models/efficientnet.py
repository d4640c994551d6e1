"""EfficientNet-B0 (Tan & Le 2019) from torchvision's builder, random init, `width_mult` exposed.

Trunk: `features` + global average pool; head: Linear to the embedding. Stem as mobilenetv2:
`auto` runs the first conv at stride 1 below 128 px (64 px ends on 4x4, 112 px on 7x7) and at
torchvision's stride 2 from 128 px up. `_efficientnet_conf` is torchvision's own B0 recipe; it is
the one place that takes a width multiplier.
"""

from __future__ import annotations

from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

from .base import EmbeddingHead, EmbeddingNet
from .mobilenetv2 import PooledFeatures
from .registry import register_model
from .resnet import uses_imagenet_stem


@register_model()
def efficientnet_b0(*, embedding_dim=512, input_size=112, width_mult=1.0, depth_mult=1.0, stem="auto",
                    dropout=0.0):
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult)
    net = EfficientNet(setting, dropout=0.2, last_channel=last_channel)
    if not uses_imagenet_stem(stem, input_size):
        net.features[0][0].stride = (1, 1)
    out = net.classifier[1].in_features
    return EmbeddingNet(PooledFeatures(net.features, out), EmbeddingHead(out, embedding_dim, dropout=dropout),
                     name="efficientnet_b0", embedding_dim=embedding_dim, input_size=input_size)
