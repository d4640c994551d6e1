"""Loss registry: `create(name, embedding_dim, num_classes, **kw)`; unknown keywords refused."""

from __future__ import annotations

from facerec.registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register


def create(name: str, embedding_dim: int, num_classes: int, **kw):
    return LOSSES.create(name, embedding_dim=embedding_dim, num_classes=num_classes, **kw)


def list_losses() -> list[str]:
    return LOSSES.names()
