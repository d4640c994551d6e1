"""Backbone registry: the table of contents of every model family.

`create(name, embedding_dim=512, input_size=112, **kw)` builds a `EmbeddingNet`;
unknown names and unknown keywords are refused with the valid choices listed.
Nothing here ever downloads or loads pretrained weights.
"""

from __future__ import annotations

from facerec.util.registry import Registry

MODELS = Registry("model")
register_model = MODELS.register


def create(name: str, embedding_dim: int = 512, input_size: int = 112, **kw):
    return MODELS.create(name, embedding_dim=embedding_dim, input_size=input_size, **kw)


def list_models() -> list[str]:
    return MODELS.names()
