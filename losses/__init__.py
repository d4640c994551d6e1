"""Losses, one per file; importing this package registers them all."""

from . import margin, softmax, triplet  # noqa: F401  (registers)
from .registry import LOSSES, create, describe, list_losses

__all__ = ["LOSSES", "create", "describe", "list_losses"]
