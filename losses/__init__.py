"""Losses, one per file; importing this package registers them all."""

from . import softmax  # noqa: F401  (registers)
from .registry import LOSSES, create, list_losses

__all__ = ["LOSSES", "create", "list_losses"]
