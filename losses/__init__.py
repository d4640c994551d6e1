"""Losses, one per file; importing this package registers them all."""

from . import adaface, curricularface, magface, margin, semisiamese, softmax, triplet  # noqa: F401  (registers)
from .base import FaceLoss, check_num_classes, check_per_class
from .registry import LOSSES, create, describe, list_losses

__all__ = ["LOSSES", "FaceLoss", "check_num_classes", "check_per_class", "create", "describe", "list_losses"]
