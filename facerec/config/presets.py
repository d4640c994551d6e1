"""Presets: package YAML files (facerec/presets/) or any YAML file, which may name other presets."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from facerec.errors import FacerecError, nearest


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("facerec").joinpath("presets").iterdir() if p.name.endswith(".yaml"))


def read_preset(name: str) -> tuple[dict, str]:
    """A preset is a package YAML by name, or any YAML file by path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, where = path.read_text(), str(path)
    else:
        res = resources.files("facerec").joinpath("presets", f"{name}.yaml")
        if not res.is_file():
            raise FacerecError(f"unknown preset {name!r}{nearest(name, preset_names())}; known: {', '.join(preset_names())}")
        text, where = res.read_text(), f"preset {name}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FacerecError(f"{where}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise FacerecError(f"{where}: expected a mapping of config keys")
    return data, where


def expand(name: str, seen: tuple):
    if name in seen:
        raise FacerecError(f"preset {name!r} includes itself ({' -> '.join(seen + (name,))})")
    data, where = read_preset(name)
    parents = data.get("preset", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        yield from expand(parent, seen + (name,))
    yield data, where
