"""What every loss declares, so the trainer and evaluator need no special cases."""

from __future__ import annotations

import torch
from torch import nn


class FaceLoss(nn.Module):
    """`loss(embeddings, labels) -> scalar tensor`.

    Class attributes every loss sets:
      min_per_class   images per identity a batch must hold (K in the P x K sampler)
      normalize_test  whether test embeddings are L2-normalised before cosine scoring
    After each call `self.stats` holds floats for logging (accuracy, active triplets, ...).
    """

    min_per_class: int = 1
    normalize_test: bool = True

    def __init__(self):
        super().__init__()
        self.stats: dict[str, float] = {}
