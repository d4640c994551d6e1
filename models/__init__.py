"""Backbones, one family per file; importing this package registers them all."""

from . import (  # noqa: F401  (each import registers its family)
    cbam_resnet,
    efficientnet,
    iresnet,
    mobilefacenet,
    mobilenetv2,
    resnet,
    se_resnet,
    tinyvit,
)
from .registry import MODELS, create, list_models

__all__ = ["MODELS", "create", "list_models"]
