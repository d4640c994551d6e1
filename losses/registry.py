"""Loss registry: `create(name, embedding_dim, num_classes, **kw)`; unknown keywords refused.

`a+b` builds a weighted combination (`weights=(wa, wb)`, options namespaced as `a.margin`).
`describe(loss)` returns everything create() was given, defaults filled in, so
`create(**describe(loss))` rebuilds the same loss.
"""

from __future__ import annotations

import inspect

from facerec.errors import FacerecError
from facerec.util.registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register


def _create_one(name: str, embedding_dim: int, num_classes: int, **kw):
    loss = LOSSES.create(name, embedding_dim=embedding_dim, num_classes=num_classes, **kw)
    loss.name = LOSSES.canonical(name)
    params = inspect.signature(LOSSES.builder(name)).parameters.values()
    loss.config = {"name": loss.name, "embedding_dim": embedding_dim, "num_classes": num_classes,
                   **{p.name: kw.get(p.name, p.default) for p in params
                      if p.name not in ("embedding_dim", "num_classes")}}
    return loss


def create(name: str, embedding_dim: int, num_classes: int, **kw):
    if "+" in name:
        from .combined import build

        return build(_create_one, name, embedding_dim, num_classes, LOSSES.aliases(), LOSSES.canonical, **kw)
    if "weights" in kw:
        raise FacerecError(f"loss {name!r}: weights apply to combinations such as softmax+triplet")
    return _create_one(name, embedding_dim, num_classes, **kw)


def list_losses() -> list[str]:
    return LOSSES.names()


def describe(loss) -> dict:
    """Name and every hyperparameter (defaults included), for the run log and config."""
    return dict(loss.config) if getattr(loss, "config", None) else {"name": getattr(loss, "name", type(loss).__name__)}
