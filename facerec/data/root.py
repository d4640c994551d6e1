"""Where the face data lives: --data-root, else $FACEREC_DATA, else ./data."""

from __future__ import annotations

import os
from pathlib import Path

from facerec.errors import DataError

ENV = "FACEREC_DATA"
LISTS_ENV = "FACEREC_LISTS"
FALLBACKS = ("data",)
LFW_DIRS = ("lfw", "lfw_home")  # the official layout, or scikit-learn's download


def candidates(explicit: str | os.PathLike | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]
    return [Path(p) for p in FALLBACKS]

def resolve(explicit: str | os.PathLike | None = None, need: str | tuple[str, ...] | None = None) -> Path:
    """The first candidate root that exists (and holds one of `need`, e.g. 'orl', when given).

    An explicit root or $FACEREC_DATA is never second-guessed: if it lacks the data, say so.
    """
    tried = candidates(explicit)
    needs = (need,) if isinstance(need, str) else tuple(need or ())
    for root in tried:
        if root.is_dir() and (need is None or any((root / n).exists() for n in needs)):
            return root
    what = f" holding {' or '.join(n + '/' for n in needs)}" if need else ""
    source = "--data-root" if explicit else (f"${ENV}" if os.environ.get(ENV) else "the default locations")
    raise DataError(
        f"no data root{what} found (from {source}): tried {', '.join(str(p) for p in tried)}. "
        f"Set {ENV}=/path/to/data or pass --data-root"
        + ("; `facerec data fetch lfw` downloads LFW" if "lfw" in needs else "")
    )


def lists_dir(name: str = "") -> Path:
    """Where generated list files go: $FACEREC_LISTS, else ./data_lists (git-ignored), per dataset."""
    base = Path(os.environ.get(LISTS_ENV) or "data_lists")
    return base / name if name else base
