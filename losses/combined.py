"""Weighted sums of losses, e.g. `softmax+triplet` with weights (0.7, 0.3).

Every part keeps its own hyperparameters under its name (`arcface.margin`, `triplet.margin`);
an un-namespaced or unknown key is refused, so no margin or scale is ever shared by accident.
Declarations: min_per_class is the largest part's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facerec.errors import FacerecError

from .base import FaceLoss


class Combined(FaceLoss):
    def __init__(self, parts: dict[str, FaceLoss], weights: tuple[float, ...]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.weights = tuple(float(w) for w in weights)
        self.min_per_class = max(p.min_per_class for p in parts.values())
        sizes = {p.num_classes for p in parts.values() if p.num_classes is not None}
        self.num_classes = sizes.pop() if len(sizes) == 1 else None

    @property
    def weight(self) -> torch.Tensor:
        owners = [p for p in self.parts.values() if isinstance(getattr(p, "weight", None), torch.Tensor)]
        if len(owners) != 1:
            raise AttributeError(f"{self.name} has {len(owners)} classifiers, so no single `weight`")
        return owners[0].weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        values = [part(embeddings, labels) for part in self.parts.values()]
        total = sum(w * v for w, v in zip(self.weights, values))
        floats = torch.stack([v.detach().float() for v in [total, *values]]).tolist()
        stats = {"loss": floats[0]}
        for (name, part), value in zip(self.parts.items(), floats[1:]):
            stats[f"{name}_loss"] = value
            stats.update({f"{name}_{k}": v for k, v in part.stats.items()})
            # The trainer logs `acc` for any classifier; the first one speaks for the sum.
            if "acc" in part.stats:
                stats.setdefault("acc", part.stats["acc"])
        self.stats = stats
        return total


def build(create_one, name: str, embedding_dim: int, num_classes: int, aliases: dict[str, str], canonical,
          weights=None, **kw) -> Combined:
    names = [canonical(n.strip()) for n in name.split("+")]
    if len(set(names)) != len(names):
        raise FacerecError(f"loss {name!r} names a part twice")
    weights = tuple(weights) if weights is not None else tuple(1.0 / len(names) for _ in names)
    if len(weights) != len(names):
        raise FacerecError(f"loss {name!r} has {len(names)} parts but {len(weights)} weights")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights):
        raise FacerecError(f"loss {name!r}: weights must be finite numbers >= 0, got {weights}")
    per_part: dict[str, dict] = {n: {} for n in names}
    for key, value in kw.items():
        part, _, opt = key.partition(".")
        part = aliases.get(part.lower(), part.lower())
        if not opt or part not in per_part:
            raise FacerecError(f"loss {name!r}: option {key!r} must be namespaced by a part "
                               f"({', '.join(n + '.<option>' for n in names)})")
        per_part[part][opt] = value
    parts = {n: create_one(n, embedding_dim, num_classes, **per_part[n]) for n in names}
    loss = Combined(parts, weights)
    loss.name = "+".join(names)
    loss.config = {"name": loss.name, "embedding_dim": embedding_dim, "num_classes": num_classes,
                   "weights": list(loss.weights),
                   **{f"{n}.{k}": v for n, p in parts.items() for k, v in p.config.items()
                      if k not in ("name", "embedding_dim", "num_classes")}}
    return loss
