"""Weighted sums of losses, e.g. `softmax+triplet` with weights (0.7, 0.3).

Every part keeps its own hyperparameters under its name (`arcface.margin`, `triplet.margin`);
an un-namespaced or unknown key is refused, so no margin or scale is ever shared by accident.
"""

from __future__ import annotations

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
        # Cosine scoring is used for evaluation; normalise when any part is trained on normalised embeddings.
        self.normalize_test = any(p.normalize_test for p in parts.values())
        classifiers = [p for p in parts.values() if getattr(p, "num_classes", None)]
        self.num_classes = classifiers[0].num_classes if classifiers else None

    @property
    def weight(self) -> torch.Tensor:
        owners = [p for p in self.parts.values() if isinstance(getattr(p, "weight", None), torch.Tensor)]
        if len(owners) != 1:
            raise AttributeError("weight: this combination has no single classifier")
        return owners[0].weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = 0.0
        stats = {}
        for (name, part), w in zip(self.parts.items(), self.weights):
            value = part(embeddings, labels)
            total = total + w * value
            stats[f"{name}_loss"] = value.detach().item()
            stats.update({f"{name}_{k}": v for k, v in part.stats.items()})
            if "accuracy" in part.stats:
                stats["accuracy"] = part.stats["accuracy"]
        self.stats = stats
        return total


def build(registry, name: str, embedding_dim: int, num_classes: int, weights=None, **kw) -> Combined:
    names = [registry.canonical(n.strip()) for n in name.split("+")]
    if len(set(names)) != len(names):
        raise FacerecError(f"loss {name!r} names a part twice")
    weights = tuple(weights) if weights is not None else tuple(1.0 / len(names) for _ in names)
    if len(weights) != len(names):
        raise FacerecError(f"loss {name!r} has {len(names)} parts but {len(weights)} weights")
    per_part: dict[str, dict] = {n: {} for n in names}
    aliases = {a: c for a, c in registry.aliases().items()}
    for key, value in kw.items():
        part, _, opt = key.partition(".")
        part = aliases.get(part, part)
        if not opt or part not in per_part:
            raise FacerecError(f"loss {name!r}: option {key!r} must be namespaced by a part "
                               f"({', '.join(n + '.<option>' for n in names)})")
        per_part[part][opt] = value
    parts = {n: registry.create(n, embedding_dim=embedding_dim, num_classes=num_classes, **per_part[n]) for n in names}
    return Combined(parts, weights)
