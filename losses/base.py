"""What every loss declares, so the trainer and evaluator need no special cases."""

from __future__ import annotations

import torch
from torch import nn

from facerec.errors import FacerecError


class FaceLoss(nn.Module):
    """`loss(embeddings, labels) -> scalar tensor`. Each loss owns its classifier (if any), so
    the model's parameter budget never counts it.

    Class attributes every loss sets:
      min_per_class   images per identity a batch must hold (K in the P x K sampler)
      num_classes     the classifier's class count; None for pure metric losses
    A classifier loss keeps its class matrix as the Parameter `weight` (num_classes, dim).
    After each call `self.stats` holds floats for logging: `acc` (top-1, percent) for classifiers;
    `active_triplets` (percent), `mean_pos_dist`, `mean_neg_dist` for metric losses.
    """

    min_per_class: int = 1
    num_classes: int | None = None

    def __init__(self):
        super().__init__()
        self.name = type(self).__name__.lower()  # the registry replaces it with the name users typed
        self.config: dict = {}  # what create() was given, defaults filled in (see losses.describe)
        self.stats: dict[str, float] = {}

    def start_new_run(self) -> None:
        """Forget what belongs to the run that trained this loss rather than to what it learnt; called
        when `--initial-model` restores the loss into a new run, whose list may number its people
        differently. Most losses hold nothing of the kind."""

    def record(self, **values: torch.Tensor) -> None:
        """Set `stats` from 0-d tensors with a single device sync for all of them."""
        floats = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
        self.stats = dict(zip(values, floats))


def check_num_classes(loss: FaceLoss, n: int) -> None:
    built = getattr(loss, "num_classes", None)
    if built is not None and built != n:
        raise FacerecError(f"loss {loss.name} was built for {built} classes but the data has {n}")


def check_per_class(loss: FaceLoss, k: int) -> None:
    need = getattr(loss, "min_per_class", 1)
    if k < need:
        raise FacerecError(f"loss {loss.name} needs at least {need} images per identity in a batch "
                           f"(it compares images of the same identity); per_class (K) is {k}")
