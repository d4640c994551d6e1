"""Loss registry: `create(name, embedding_dim, num_classes, **kw)`; unknown keywords refused.

`a+b` builds a weighted combination (`weights=(wa, wb)`, options namespaced as `a.margin`).
"""

from __future__ import annotations

from facerec.errors import FacerecError
from facerec.registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register


def create(name: str, embedding_dim: int, num_classes: int, **kw):
    if "+" in name:
        from .combined import build

        return build(LOSSES, name, embedding_dim, num_classes, **kw)
    if "weights" in kw:
        raise FacerecError(f"loss {name!r}: weights apply to combinations such as softmax+triplet")
    return LOSSES.create(name, embedding_dim=embedding_dim, num_classes=num_classes, **kw)


def list_losses() -> list[str]:
    return LOSSES.names()


def describe(loss) -> dict:
    """Name and hyperparameters, for the run log and config."""
    from .combined import Combined

    if isinstance(loss, Combined):
        return {"parts": {n: describe(p) for n, p in loss.parts.items()}, "weights": list(loss.weights)}
    keys = ("scale", "margin", "easy_margin", "subcenters", "mining", "hard_rank", "hard_prob", "label_smoothing",
            "num_classes")
    return {"type": type(loss).__name__, **{k: getattr(loss, k) for k in keys if hasattr(loss, k)}}
