"""Backbones, one family per file; importing this package registers them all."""

from . import resnet  # noqa: F401  (registers the family)
from .registry import MODELS, create, list_models

__all__ = ["MODELS", "create", "list_models"]
