"""A name -> builder table shared by the model and loss registries (timm style)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from facerec.errors import FacerecError, nearest


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str | None = None, aliases: tuple[str, ...] = ()):
        def deco(fn):
            key = (name or fn.__name__).lower()
            if key in self._builders or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._builders[key] = fn
            for alias in aliases:
                self._aliases[alias.lower()] = key
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._builders)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def canonical(self, name: str) -> str:
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._builders:
            known = ", ".join(self.names())
            raise FacerecError(
                f"unknown {self.kind} {name!r}{nearest(key, list(self._builders) + list(self._aliases))}; "
                f"known: {known}"
            )
        return key

    def builder(self, name: str) -> Callable:
        return self._builders[self.canonical(name)]

    def accepted_keywords(self, name: str) -> list[str]:
        sig = inspect.signature(self.builder(name))
        return [p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def check_keywords(self, name: str, kwargs: dict) -> None:
        accepted = self.accepted_keywords(name)
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            hints = "".join(nearest(k, accepted) for k in unknown[:1])
            raise FacerecError(
                f"{self.kind} {self.canonical(name)!r} does not accept {', '.join(map(repr, unknown))}{hints}; "
                f"accepted: {', '.join(accepted)}"
            )

    def create(self, name: str, *args, **kwargs):
        self.check_keywords(name, kwargs)
        return self.builder(name)(*args, **kwargs)
